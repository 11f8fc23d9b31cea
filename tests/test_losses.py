"""The hand-written losses against torch.nn.functional and against sums written out by hand."""
import pytest
import torch
import torch.nn.functional as F

from minunet.losses import (LOSSES, BCEDiceLoss, BCEJaccardLoss, BCELoss, DiceLoss, JaccardLoss, bce_with_logits,
                            dice_coefficient, soft_jaccard)


def random_logits_and_target(seed, shape=(3, 1, 6, 5), scale=4.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g) * scale   # (B, 1, H, W)
    target = (torch.rand(shape, generator=g) > 0.6).float()  # (B, 1, H, W)
    return logits, target


def bce_and_grad(fn, logits, target):
    """Loss value and d(loss)/d(logits) of fn(logits, target)."""
    x = logits.clone().requires_grad_(True)
    loss = fn(x, target)
    loss.backward()
    return loss.detach(), x.grad


# ---------------------------------------------------------------- BCE with logits

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bce_matches_torch_values_and_gradients(seed):
    logits, target = random_logits_and_target(seed)
    logits[0, 0, 0, :3] = torch.tensor([0.0, 100.0, -100.0])  # exactly 0 and saturated logits
    ours, our_grad = bce_and_grad(bce_with_logits, logits, target)
    ref, ref_grad = bce_and_grad(F.binary_cross_entropy_with_logits, logits, target)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(our_grad, ref_grad)


def test_bce_soft_targets_match_torch():
    logits, _ = random_logits_and_target(3)
    target = torch.rand(logits.shape, generator=torch.Generator().manual_seed(4))
    ours, our_grad = bce_and_grad(bce_with_logits, logits, target)
    ref, ref_grad = bce_and_grad(F.binary_cross_entropy_with_logits, logits, target)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(our_grad, ref_grad)


def test_bce_extreme_logits_are_finite_and_exact():
    # every pair of (logit, target); loss(x, y) is |x| when the sign is wrong and ~0 when right
    values = torch.tensor([-1000.0, -100.0, -30.0, -1e-3, 0.0, 1e-3, 30.0, 100.0, 1000.0])
    for y in (0.0, 1.0):
        for v in values:
            x = v.reshape(1, 1, 1, 1)
            t = torch.full_like(x, y)
            ours, our_grad = bce_and_grad(bce_with_logits, x, t)
            ref, ref_grad = bce_and_grad(F.binary_cross_entropy_with_logits, x, t)
            assert torch.isfinite(ours) and torch.isfinite(our_grad).all()
            torch.testing.assert_close(ours, ref)
            torch.testing.assert_close(our_grad, ref_grad)
    wrong = bce_with_logits(torch.full((1, 1, 1, 1), -1000.0), torch.ones(1, 1, 1, 1))
    assert wrong.item() == 1000.0


def test_bce_gradient_at_zero_is_half_minus_target():
    x = torch.zeros(1, 1, 1, 2, requires_grad=True)
    target = torch.tensor([[[[0.0, 1.0]]]])
    bce_with_logits(x, target).backward()
    # d/dx of the mean over 2 pixels: (sigmoid(0) - y) / 2
    torch.testing.assert_close(x.grad, torch.tensor([[[[0.25, -0.25]]]]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_bce_half_precision_is_upcast(dtype):
    logits, target = random_logits_and_target(5)
    logits[0, 0, 0, :3] = torch.tensor([0.0, 100.0, -100.0])
    x = logits.to(dtype).requires_grad_(True)
    loss = bce_with_logits(x, target.to(dtype))
    loss.backward()
    assert loss.dtype == torch.float32
    assert x.grad.dtype == dtype
    # the reference sees the same (rounded) half-precision numbers, in float32
    ref, ref_grad = bce_and_grad(F.binary_cross_entropy_with_logits, x.detach().float(), target)
    torch.testing.assert_close(loss.detach(), ref)
    torch.testing.assert_close(x.grad, ref_grad.to(dtype))


def test_bce_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        bce_with_logits(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 5))


# ---------------------------------------------------------------- soft Dice

def dice_by_loops(probs, target, smooth):
    """Soft Dice of each image by python loops over its pixels, then the mean over images."""
    per_image = []
    for b in range(probs.shape[0]):
        inter = p_sum = t_sum = 0.0
        for c in range(probs.shape[1]):
            for i in range(probs.shape[2]):
                for j in range(probs.shape[3]):
                    p, t = float(probs[b, c, i, j]), float(target[b, c, i, j])
                    inter += p * t
                    p_sum += p
                    t_sum += t
        per_image.append((2 * inter + smooth) / (p_sum + t_sum + smooth))
    return sum(per_image) / len(per_image)


@pytest.mark.parametrize("seed,smooth", [(0, 1.0), (1, 0.0), (2, 1e-3)])
def test_dice_coefficient_matches_loops(seed, smooth):
    logits, target = random_logits_and_target(seed, shape=(4, 1, 5, 7))
    probs = torch.sigmoid(logits).double()
    ours = dice_coefficient(probs, target, smooth=smooth)
    assert ours.shape == ()
    assert ours.item() == pytest.approx(dice_by_loops(probs, target, smooth), rel=1e-12)


def test_dice_coefficient_gradcheck():
    logits, target = random_logits_and_target(6, shape=(2, 1, 4, 3))
    probs = torch.sigmoid(logits).double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: dice_coefficient(p, target.double()), (probs,))
    x = logits.double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: DiceLoss()(z, target.double()), (x,))


def test_dice_edge_cases():
    empty = torch.zeros(2, 1, 4, 4)
    full = torch.ones(2, 1, 4, 4)
    assert dice_coefficient(empty, empty).item() == 1.0            # nothing to find, nothing found
    assert dice_coefficient(full, full).item() == 1.0
    assert dice_coefficient(empty, empty, smooth=1e-6).item() == 1.0
    # prediction empty, target full: (0 + smooth) / (0 + 16 + smooth)
    assert dice_coefficient(empty, full, smooth=1.0).item() == pytest.approx(1 / 17)
    assert dice_coefficient(empty, full, smooth=0.0).item() == 0.0
    # a single pixel, hit and missed
    one = torch.zeros(1, 1, 4, 4)
    one[0, 0, 2, 1] = 1
    other = torch.zeros(1, 1, 4, 4)
    other[0, 0, 2, 2] = 1
    assert dice_coefficient(one, one, smooth=0.0).item() == 1.0
    assert dice_coefficient(other, one, smooth=0.0).item() == 0.0


def test_dice_is_mean_over_images_not_pooled():
    # image 0: a 400-pixel lesion, predicted exactly; image 1: a 4-pixel lesion, missed
    target = torch.zeros(2, 1, 32, 32)
    target[0, :, 4:24, 4:24] = 1
    target[1, :, 10:12, 10:12] = 1
    probs = torch.zeros_like(target)
    probs[0] = target[0]
    ours = dice_coefficient(probs, target, smooth=0.0).item()
    pooled = 2 * (probs * target).sum() / (probs.sum() + target.sum())
    assert ours == pytest.approx(0.5)                   # (1 + 0) / 2
    assert pooled.item() == pytest.approx(800 / 804)    # the small miss nearly vanishes


def test_dice_loss_is_one_minus_dice_of_sigmoid():
    logits, target = random_logits_and_target(7)
    logits = logits.double()
    expected = 1 - dice_by_loops(torch.sigmoid(logits), target, 1.0)
    assert DiceLoss()(logits, target).item() == pytest.approx(expected, rel=1e-12)
    expected = 1 - dice_by_loops(torch.sigmoid(logits), target, 0.5)
    assert DiceLoss(smooth=0.5)(logits, target).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_dice_loss_half_precision_is_upcast(dtype):
    logits, target = random_logits_and_target(8)
    x = logits.to(dtype)
    loss = DiceLoss()(x, target)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, DiceLoss()(x.float(), target))


def test_dice_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        dice_coefficient(torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        dice_coefficient(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4))


# ---------------------------------------------------------------- BCE + Dice

@pytest.mark.parametrize("bce_weight,dice_weight", [(1.0, 1.0), (0.3, 2.0), (0.0, 1.0), (1.0, 0.0)])
def test_bce_dice_loss_is_the_weighted_sum(bce_weight, dice_weight):
    logits, target = random_logits_and_target(9)
    ours, our_grad = bce_and_grad(BCEDiceLoss(bce_weight, dice_weight), logits, target)

    def reference(x, t):
        dice = 2 * (torch.sigmoid(x) * t).sum(dim=(1, 2, 3)) + 1
        dice = dice / (torch.sigmoid(x).sum(dim=(1, 2, 3)) + t.sum(dim=(1, 2, 3)) + 1)
        return bce_weight * F.binary_cross_entropy_with_logits(x, t) + dice_weight * (1 - dice.mean())

    ref, ref_grad = bce_and_grad(reference, logits, target)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(our_grad, ref_grad)


def test_bce_dice_loss_trains_logits_to_the_mask():
    _, target = random_logits_and_target(10, shape=(2, 1, 8, 8))
    logits = torch.zeros_like(target, requires_grad=True)
    criterion = BCEDiceLoss()
    optimizer = torch.optim.SGD([logits], lr=20.0)
    first = criterion(logits, target).item()
    for _ in range(50):
        optimizer.zero_grad()
        loss = criterion(logits, target)
        loss.backward()
        optimizer.step()
    assert loss.item() < first / 5
    assert torch.equal((torch.sigmoid(logits) > 0.5).float(), target)


# ---------------------------------------------------------------- soft Jaccard

def jaccard_by_loops(probs, target, smooth):
    """Soft Jaccard of each image by python loops over its pixels, then the mean over images."""
    per_image = []
    for b in range(probs.shape[0]):
        inter = union = 0.0
        for c in range(probs.shape[1]):
            for i in range(probs.shape[2]):
                for j in range(probs.shape[3]):
                    p, t = float(probs[b, c, i, j]), float(target[b, c, i, j])
                    inter += p * t
                    union += p + t - p * t
        per_image.append((inter + smooth) / (union + smooth))
    return sum(per_image) / len(per_image)


@pytest.mark.parametrize("seed,smooth", [(0, 1.0), (1, 0.0), (2, 1e-3)])
def test_soft_jaccard_matches_loops(seed, smooth):
    logits, target = random_logits_and_target(seed, shape=(4, 1, 5, 7))
    probs = torch.sigmoid(logits).double()
    ours = soft_jaccard(probs, target, smooth=smooth)
    assert ours.shape == ()
    assert ours.item() == pytest.approx(jaccard_by_loops(probs, target, smooth), rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_soft_jaccard_is_dice_over_two_minus_dice_on_hard_masks(seed):
    _, target = random_logits_and_target(seed, shape=(5, 1, 6, 6))
    pred = (torch.rand(target.shape, generator=torch.Generator().manual_seed(seed + 10)) > 0.5).double()
    for b in range(target.shape[0]):  # per image: the batch means of J and D are not related this way
        p, t = pred[b:b + 1], target[b:b + 1]
        d = dice_coefficient(p, t, smooth=0.0).item()
        assert soft_jaccard(p, t, smooth=0.0).item() == pytest.approx(d / (2 - d), rel=1e-12)


def test_soft_jaccard_gradcheck():
    logits, target = random_logits_and_target(6, shape=(2, 1, 4, 3))
    probs = torch.sigmoid(logits).double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: soft_jaccard(p, target.double()), (probs,))
    x = logits.double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: JaccardLoss()(z, target.double()), (x,))
    assert torch.autograd.gradcheck(lambda z: BCEJaccardLoss(0.5, 2.0)(z, target.double()), (x,))


def test_soft_jaccard_edge_cases():
    empty = torch.zeros(2, 1, 4, 4)
    full = torch.ones(2, 1, 4, 4)
    assert soft_jaccard(empty, empty).item() == 1.0            # nothing to find, nothing found
    assert soft_jaccard(full, full).item() == 1.0
    assert soft_jaccard(empty, empty, smooth=1e-6).item() == 1.0
    assert soft_jaccard(empty, full, smooth=1.0).item() == pytest.approx(1 / 17)
    assert soft_jaccard(empty, full, smooth=0.0).item() == 0.0
    half = torch.zeros(1, 1, 4, 4)
    half[..., :2] = 1
    assert soft_jaccard(half, full[:1], smooth=0.0).item() == 0.5  # 8 of a 16-pixel union
    with pytest.raises(ValueError, match="same shape"):
        soft_jaccard(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 5))


def test_jaccard_loss_is_one_minus_jaccard_of_sigmoid():
    logits, target = random_logits_and_target(7)
    logits = logits.double()
    expected = 1 - jaccard_by_loops(torch.sigmoid(logits), target, 1.0)
    assert JaccardLoss()(logits, target).item() == pytest.approx(expected, rel=1e-12)
    expected = 1 - jaccard_by_loops(torch.sigmoid(logits), target, 0.5)
    assert JaccardLoss(smooth=0.5)(logits, target).item() == pytest.approx(expected, rel=1e-12)
    loss = JaccardLoss()(logits.to(torch.bfloat16), target)
    assert loss.dtype == torch.float32


@pytest.mark.parametrize("bce_weight,jaccard_weight", [(1.0, 1.0), (0.3, 2.0), (0.0, 1.0), (1.0, 0.0)])
def test_bce_jaccard_loss_is_the_weighted_sum(bce_weight, jaccard_weight):
    logits, target = random_logits_and_target(9)
    ours, our_grad = bce_and_grad(BCEJaccardLoss(bce_weight, jaccard_weight), logits, target)

    def reference(x, t):
        p = torch.sigmoid(x)
        inter = (p * t).sum(dim=(1, 2, 3))
        jaccard = (inter + 1) / (p.sum(dim=(1, 2, 3)) + t.sum(dim=(1, 2, 3)) - inter + 1)
        return bce_weight * F.binary_cross_entropy_with_logits(x, t) + jaccard_weight * (1 - jaccard.mean())

    ref, ref_grad = bce_and_grad(reference, logits, target)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(our_grad, ref_grad)


def test_bce_loss_module_matches_torch():
    logits, target = random_logits_and_target(11)
    ours, our_grad = bce_and_grad(BCELoss(), logits, target)
    ref, ref_grad = bce_and_grad(F.binary_cross_entropy_with_logits, logits, target)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(our_grad, ref_grad)


def test_losses_by_name():
    assert sorted(LOSSES) == ["bce", "bce_dice", "bce_jaccard", "dice", "jaccard"]
    logits, target = random_logits_and_target(12)
    expected = {
        "bce": F.binary_cross_entropy_with_logits(logits, target),
        "dice": 1 - dice_coefficient(torch.sigmoid(logits), target),
        "jaccard": 1 - soft_jaccard(torch.sigmoid(logits), target),
    }
    expected["bce_dice"] = expected["bce"] + expected["dice"]
    expected["bce_jaccard"] = expected["bce"] + expected["jaccard"]
    for name, cls in LOSSES.items():
        criterion = cls()  # each builds with no arguments: the CLI's --loss NAME does exactly this
        assert isinstance(criterion, torch.nn.Module)
        torch.testing.assert_close(criterion(logits, target), expected[name])
