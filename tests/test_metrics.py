"""The ISIC metrics against confusion counts made by python loops over pixels."""
import pytest
import torch

from minunet.metrics import METRIC_NAMES, MetricAccumulator, confusion_counts, isic_metrics


def random_masks(seed, shape=(4, 1, 5, 7), fraction=0.4):
    """A pair of random bool masks (pred, target) of the given shape."""
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(shape, generator=g) < fraction      # (B, 1, H, W)
    target = torch.rand(shape, generator=g) < fraction    # (B, 1, H, W)
    return pred, target


def counts_by_loops(pred, target):
    """[(TP, FP, FN, TN)] per image, counted pixel by pixel."""
    counts = []
    for b in range(pred.shape[0]):
        tp = fp = fn = tn = 0
        for c in range(pred.shape[1]):
            for i in range(pred.shape[2]):
                for j in range(pred.shape[3]):
                    p, t = bool(pred[b, c, i, j]), bool(target[b, c, i, j])
                    tp += p and t
                    fp += p and not t
                    fn += t and not p
                    tn += not p and not t
        counts.append((tp, fp, fn, tn))
    return counts


def metrics_by_definition(tp, fp, fn, tn):
    """The ISIC metrics of one image from its counts, each 1.0 where its denominator is 0."""
    def ratio(num, den):
        return num / den if den > 0 else 1.0
    jaccard = ratio(tp, tp + fp + fn)
    return {
        "accuracy": ratio(tp + tn, tp + tn + fp + fn),
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "jaccard": jaccard,
        "threshold_jaccard": jaccard if jaccard >= 0.65 else 0.0,
        "dice": ratio(2 * tp, 2 * tp + fp + fn),
    }


def assert_metrics_equal(ours, expected_per_image):
    """ours: dict of (B,) tensors; expected_per_image: list of dicts of floats, one per image."""
    assert list(ours) == list(METRIC_NAMES)
    for name in METRIC_NAMES:
        assert ours[name].dtype == torch.float32
        assert ours[name].shape == (len(expected_per_image),)
        expected = [m[name] for m in expected_per_image]
        assert ours[name].tolist() == pytest.approx(expected, rel=1e-6, abs=1e-7), name


# ---------------------------------------------------------------- against loops

@pytest.mark.parametrize("seed,fraction", [(0, 0.4), (1, 0.1), (2, 0.7), (3, 0.02)])
def test_confusion_counts_match_loops(seed, fraction):
    pred, target = random_masks(seed, fraction=fraction)
    tp, fp, fn, tn = confusion_counts(pred, target)
    assert list(zip(tp.tolist(), fp.tolist(), fn.tolist(), tn.tolist())) == counts_by_loops(pred, target)


@pytest.mark.parametrize("seed,fraction", [(0, 0.4), (1, 0.1), (2, 0.7), (3, 0.02)])
def test_isic_metrics_match_definitions(seed, fraction):
    pred, target = random_masks(seed, shape=(6, 1, 6, 5), fraction=fraction)
    expected = [metrics_by_definition(*c) for c in counts_by_loops(pred, target)]
    assert_metrics_equal(isic_metrics(pred, target), expected)


def test_dice_is_2j_over_1_plus_j_per_image():
    pred, target = random_masks(4, shape=(8, 1, 9, 9), fraction=0.5)
    m = isic_metrics(pred, target)
    assert (m["jaccard"] < 1).all() and (m["jaccard"] > 0).all()   # a real test, not all 0 or 1
    torch.testing.assert_close(m["dice"], 2 * m["jaccard"] / (1 + m["jaccard"]))


# ---------------------------------------------------------------- mask formats

def test_bool_01_and_probability_masks_agree():
    g = torch.Generator().manual_seed(5)
    probs = torch.rand(3, 1, 6, 6, generator=g)             # (B, 1, H, W) in [0, 1)
    probs[0, 0, 0, 0] = 0.5                                 # exactly 0.5 is background
    target = torch.rand(3, 1, 6, 6, generator=g) > 0.5
    binary = probs > 0.5
    expected = isic_metrics(binary, target)
    for pred in (probs, binary.float(), binary.long(), binary.to(torch.uint8), probs.double()):
        for tgt in (target, target.float(), target.to(torch.uint8)):
            ours = isic_metrics(pred, tgt)
            for name in METRIC_NAMES:
                torch.testing.assert_close(ours[name], expected[name])
    pred = torch.zeros(1, 1, 1, 1)
    pred[0, 0, 0, 0] = 0.5
    assert confusion_counts(pred, torch.ones(1, 1, 1, 1))[0].item() == 0    # 0.5 is not a hit


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        isic_metrics(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 5))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        isic_metrics(torch.zeros(4, 4), torch.zeros(4, 4))


# ---------------------------------------------------------------- edge cases

def one_image(*pixels, size=4, fill=False):
    """A (1, 1, size, size) bool mask, `fill` everywhere except the given (row, col) pixels."""
    mask = torch.full((1, 1, size, size), fill)
    for i, j in pixels:
        mask[0, 0, i, j] = not fill
    return mask


def values(pred, target):
    return {name: v.item() for name, v in isic_metrics(pred, target).items()}


def test_both_masks_empty_scores_one_everywhere():
    empty = one_image()
    assert values(empty, empty) == {name: 1.0 for name in METRIC_NAMES}


def test_empty_prediction_nonempty_target():
    m = values(one_image(), one_image((1, 1), (1, 2)))
    assert m == {"accuracy": 14 / 16, "sensitivity": 0.0, "specificity": 1.0,
                 "jaccard": 0.0, "threshold_jaccard": 0.0, "dice": 0.0}


def test_full_prediction_empty_target():
    m = values(one_image(fill=True), one_image())
    assert m == {"accuracy": 0.0, "sensitivity": 1.0, "specificity": 0.0,
                 "jaccard": 0.0, "threshold_jaccard": 0.0, "dice": 0.0}


def test_all_foreground_both():
    full = one_image(fill=True)
    assert values(full, full) == {name: 1.0 for name in METRIC_NAMES}   # specificity: 0/0 -> 1


def test_single_pixel_hit_and_miss():
    target = one_image((2, 3))
    assert values(one_image((2, 3)), target) == {name: 1.0 for name in METRIC_NAMES}
    m = values(one_image((2, 2)), target)                 # the neighbouring pixel
    assert m == pytest.approx({"accuracy": 14 / 16, "sensitivity": 0.0, "specificity": 14 / 15,
                               "jaccard": 0.0, "threshold_jaccard": 0.0, "dice": 0.0})


def test_threshold_jaccard_at_0_649_and_0_65():
    # jaccard 13/20 = 0.65 exactly: target 20 pixels, prediction 13 of them
    target = torch.ones(1, 1, 4, 5, dtype=torch.bool)
    pred = torch.zeros_like(target)
    pred.view(-1)[:13] = True
    m = values(pred, target)
    assert m["jaccard"] == pytest.approx(0.65)
    assert m["threshold_jaccard"] == m["jaccard"]          # kept at the threshold
    # jaccard 649/1000 = 0.649: target 1000 pixels, prediction 649 of them
    target = torch.ones(1, 1, 25, 40, dtype=torch.bool)
    pred = torch.zeros_like(target)
    pred.view(-1)[:649] = True
    m = values(pred, target)
    assert m["jaccard"] == pytest.approx(0.649)
    assert m["threshold_jaccard"] == 0.0                   # just below: scores nothing


def test_mixed_lesion_sizes_give_per_image_mean_not_pooled():
    # image 0: a 400-pixel lesion found exactly; image 1: a 4-pixel lesion missed
    target = torch.zeros(2, 1, 32, 32, dtype=torch.bool)
    target[0, :, 4:24, 4:24] = True
    target[1, :, 10:12, 10:12] = True
    pred = torch.zeros_like(target)
    pred[0] = target[0]
    m = isic_metrics(pred, target)
    assert m["dice"].tolist() == [1.0, 0.0]
    assert m["jaccard"].mean().item() == 0.5
    pooled_jaccard = (pred & target).sum() / (pred | target).sum()
    assert pooled_jaccard.item() == pytest.approx(400 / 404)
    acc = MetricAccumulator()
    acc.update(pred, target)
    assert acc.compute()["dice"] == 0.5


# ---------------------------------------------------------------- streaming accumulator

def test_accumulator_over_batches_equals_metrics_of_the_concatenation():
    batches = [random_masks(seed, shape=(b, 1, 6, 6), fraction=0.3 + 0.1 * seed)
               for seed, b in enumerate([3, 1, 5, 2])]
    acc = MetricAccumulator()
    for pred, target in batches:
        batch = acc.update(pred.float(), target)
        torch.testing.assert_close(batch["dice"], isic_metrics(pred, target)["dice"])
    whole = isic_metrics(torch.cat([p for p, _ in batches]), torch.cat([t for _, t in batches]))
    assert acc.count == 11
    per_image = acc.per_image()
    scores = acc.compute()
    assert scores["count"] == 11
    for name in METRIC_NAMES:
        torch.testing.assert_close(per_image[name], whole[name])
        assert isinstance(scores[name], float)
        assert scores[name] == pytest.approx(whole[name].double().mean().item(), rel=1e-6)
    # not the mean of the batch means: the batches have different sizes
    batch_means = [isic_metrics(p, t)["dice"].mean().item() for p, t in batches]
    assert scores["dice"] != pytest.approx(sum(batch_means) / len(batch_means), rel=1e-6)


def test_accumulator_reset_and_empty():
    acc = MetricAccumulator()
    assert acc.count == 0
    assert acc.per_image()["dice"].shape == (0,)
    with pytest.raises(ValueError, match="update"):
        acc.compute()
    pred, target = random_masks(7)
    acc.update(pred, target)
    acc.reset()
    assert acc.count == 0
    acc.update(pred[:1], target[:1])
    assert acc.compute()["count"] == 1
    assert acc.compute()["jaccard"] == pytest.approx(isic_metrics(pred[:1], target[:1])["jaccard"].item())


def test_accumulator_accepts_tensors_that_require_grad():
    probs = torch.rand(2, 1, 4, 4, requires_grad=True)
    acc = MetricAccumulator()
    acc.update(probs, torch.ones(2, 1, 4, 4))
    assert not acc.per_image()["accuracy"].requires_grad
