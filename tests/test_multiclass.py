"""Several classes and grayscale images (issue 25): the losses of K classes against loops over pixels and torch,
the per-class metrics against direct counts, the one way to masks (softmax, TTA, argmax), a gray encoder's summed
first convolution, and data of K classes and 1 channel from npz files, folders and the synthetic set."""
import math

import pytest
import torch
import torch.nn.functional as F

from minunet import ResNet34Encoder, UNet
from minunet.checkpoint import Checkpoint
from minunet.data.catalog import DataSpec, dataset_names, spec_of
from minunet.data import DataError, make_dataset
from minunet.errors import SettingError
from minunet.inference import FLIPS, Inference
from minunet.losses import LOSSES, bce_with_logits, cross_entropy, dice_coefficient, soft_jaccard
from minunet.metrics import MetricAccumulator, class_metrics, confusion_matrix, isic_metrics
from minunet.models import new_model
from minunet.recipe import Recipe
from minunet.transforms import normalisation

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def batch(seed=0, b=2, k=4, h=5, w=6):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, k, h, w, generator=g) * 3, torch.randint(0, k, (b, 1, h, w), generator=g)


def test_cross_entropy_equals_a_loop_over_pixels_and_torch_values_and_gradients():
    logits, target = batch()
    x = logits.clone().requires_grad_()
    ours = cross_entropy(x, target)
    ours.backward()
    b, k, h, w = logits.shape
    loop = sum(-math.log(math.exp(logits[i, target[i, 0, r, c], r, c]) /
                         sum(math.exp(logits[i, j, r, c]) for j in range(k)))
               for i in range(b) for r in range(h) for c in range(w)) / (b * h * w)
    assert ours.item() == pytest.approx(loop, rel=1e-5)
    y = logits.clone().requires_grad_()
    theirs = F.cross_entropy(y, target[:, 0])
    theirs.backward()
    assert torch.allclose(ours, theirs, atol=1e-6) and torch.allclose(x.grad, y.grad, atol=1e-7)
    assert torch.isfinite(cross_entropy(logits * 1e4, target))  # no overflow for huge logits


def test_soft_dice_and_jaccard_of_the_foreground_classes_equal_a_loop():
    logits, target = batch(1)
    probs = torch.softmax(logits, 1)
    b, k = probs.shape[:2]
    for kind in ("dice", "jaccard"):
        scores = []
        for i in range(b):
            for c in range(1, k):  # foreground classes only
                p, t = probs[i, c].flatten().tolist(), (target[i, 0] == c).flatten().float().tolist()
                shared, total = sum(a * b_ for a, b_ in zip(p, t)), sum(p) + sum(t)
                scores.append((2 * shared + 1) / (total + 1) if kind == "dice" else (shared + 1) / (total - shared + 1))
        overlap = dice_coefficient if kind == "dice" else soft_jaccard
        assert overlap(probs, target).item() == pytest.approx(sum(scores) / len(scores), rel=1e-5)


def test_two_classes_of_softmax_are_the_sigmoid_so_ce_jaccard_is_bce_jaccard():
    """softmax((0, x))[1] = sigmoid(x): the binary path is the case K = 2, with the background's logit at 0."""
    g = torch.Generator().manual_seed(2)
    x, target = torch.randn(3, 1, 8, 8, generator=g) * 2, torch.randint(0, 2, (3, 1, 8, 8), generator=g)
    pair = torch.cat([torch.zeros_like(x), x], 1)  # (B, 2, H, W)
    assert torch.allclose(torch.softmax(pair, 1)[:, 1:], torch.sigmoid(x), atol=1e-6)
    assert torch.allclose(cross_entropy(pair, target), bce_with_logits(x, target.float()), atol=1e-6)
    assert torch.allclose(soft_jaccard(torch.softmax(pair, 1), target), soft_jaccard(torch.sigmoid(x), target.float()),
                          atol=1e-6)
    for name, loss in LOSSES.items():  # one module per name: the pair's softmax, the one logit's sigmoid
        assert torch.allclose(loss()(pair, target), loss()(x, target.float()), atol=1e-6), name


def test_every_loss_takes_k_classes_the_recipes_as_cross_entropy_plus_the_soft_jaccard_of_the_foreground():
    logits, target = batch(3)
    probs, k = torch.softmax(logits, 1), logits.shape[1]
    shared = [(probs[:, c] * (target[:, 0] == c)).sum((1, 2)) for c in range(1, k)]  # each (B,): classes 1..K-1
    union = [probs[:, c].sum((1, 2)) + (target[:, 0] == c).sum((1, 2)) - s for c, s in enumerate(shared, start=1)]
    jaccard = torch.stack([(s + 1) / (u + 1) for s, u in zip(shared, union)], 1).mean()
    expected = F.cross_entropy(logits, target[:, 0]) + 1 - jaccard
    assert torch.allclose(LOSSES[Recipe().loss]()(logits, target), expected, atol=1e-6)
    assert torch.allclose(LOSSES["bce"]()(logits, target), F.cross_entropy(logits, target[:, 0]), atol=1e-6)
    with pytest.raises(ValueError, match="same shape"):  # K logits take class indices of one channel
        LOSSES["dice"]()(logits, F.one_hot(target[:, 0], k).permute(0, 3, 1, 2).float())


def test_per_class_metrics_equal_counts_and_an_absent_class_is_left_out():
    pred = torch.tensor([[[[0, 1, 1], [2, 2, 0]]], [[[0, 0, 0], [1, 1, 0]]]])  # (2, 1, 2, 3)
    truth = torch.tensor([[[[0, 1, 0], [2, 0, 0]]], [[[0, 0, 0], [1, 0, 0]]]])
    scores = class_metrics(pred, truth, 3)
    # image 0, class 1: TP 1, FP 1, FN 0 -> Dice 2/3; class 2: TP 1, FP 1 -> 2/3
    assert scores["dice"][0].tolist() == pytest.approx([2 / 3, 2 / 3, 2 / 3])  # background: TP 2, FN 2
    # image 1, class 2: in neither truth nor prediction -> left out (NaN, not the binary convention's 1.0)
    assert scores["dice"][1, 2].isnan() and scores["dice"][1, 1].item() == pytest.approx(2 / 3)
    for c in range(3):  # each class scored as its own binary mask, where the image holds or predicts it
        in_image = ((pred == c) | (truth == c)).flatten(1).any(1)  # (2,)
        expected = isic_metrics(pred == c, truth == c)["jaccard"].masked_fill(~in_image, float("nan"))
        assert torch.allclose(scores["jaccard"][:, c], expected, equal_nan=True)
    acc = MetricAccumulator(("background", "a", "b"))
    acc.update(pred[:1], truth[:1])
    acc.update(pred[1:], truth[1:])
    means = acc.compute()
    # per image over the classes 1..K-1 it scores (image 1: class a alone), then over images
    assert means["dice"] == pytest.approx(((2 / 3 + 2 / 3) / 2 + 2 / 3) / 2)
    assert means["per_class"]["b"]["dice"] == pytest.approx(2 / 3) and means["absent"] == []  # b: image 0 only
    expected = torch.zeros(3, 3, dtype=torch.int64)
    for t, p in zip(truth.flatten().tolist(), pred.flatten().tolist()):
        expected[t, p] += 1
    assert means["confusion"] == expected.tolist() == confusion_matrix(pred, truth, 3).tolist()


class Fixed(torch.nn.Module):
    """A 'model' whose logits are a fixed function of the image (so flips change them)."""

    def __init__(self, k):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, k, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


def test_inference_of_several_classes_is_the_argmax_of_the_mean_softmax_of_the_flips():
    torch.manual_seed(0)
    model, images = Fixed(4).eval(), torch.randn(2, 3, 16, 16)
    inference = Inference(spec=DataSpec(3, ("bg", "a", "b", "c")))
    probs = inference.probabilities(model, images, channels_last=False)
    with torch.no_grad():
        expected = sum(torch.softmax(model(images.flip(d)), 1).flip(d) for d in FLIPS) / len(FLIPS)
    assert probs.shape == (2, 4, 16, 16) and torch.allclose(probs, expected, atol=1e-6)
    masks = inference.masks(probs, (20, 24))
    resized = F.interpolate(expected, size=(20, 24), mode="bilinear", align_corners=False)
    assert masks.shape == (2, 1, 20, 24) and torch.equal(masks.long(), resized.argmax(1, keepdim=True))
    state = Checkpoint("unet", dict(out_channels=4), {}, size=16, mean=[0.5] * 3, std=[0.2] * 3,
                       classes=["bg", "a", "b", "c"], channels=3)
    with pytest.raises(SettingError, match=r"^a threshold and post-processing are for two classes: this checkpoint "
                                           r"has 4, .*: leave threshold out$"):
        Inference.of_checkpoint(state, threshold=0.4)
    assert Inference.of_checkpoint(state, threshold=None, postprocess=False).spec.classes == ("bg", "a", "b", "c")
    old = Checkpoint.of_file(dict(model="unet", model_args={}, state_dict={}, size=16, mean=[0.5] * 3,
                                  std=[0.2] * 3))  # 0.1.0's: RGB, binary
    assert Inference.of_checkpoint(old).spec == DataSpec()


def test_evaluate_scores_k_classes_per_class_and_sweeps_thresholds_only_where_one_decides():
    from minunet.data import LesionDataset
    from minunet.device import Runtime
    from minunet.evaluation import THRESHOLDS, evaluate

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    images = (torch.rand(5, 3, 16, 16, generator=g) * 255).to(torch.uint8)
    masks = torch.randint(0, 3, (5, 1, 16, 16), generator=g, dtype=torch.uint8)
    dataset, names = LesionDataset(images, masks, list("abcde"), classes=("bg", "a", "b")), ("bg", "a", "b")
    runtime, model = Runtime("cpu", "fp32", workers=0, batch_size=2), Fixed(3).eval()
    scores = evaluate(model, dataset, Inference(size=16, tta=False, spec=DataSpec(3, names)), runtime)
    assert "dice_by_threshold" not in scores and "dice_sweep" not in scores  # the argmax decides: no threshold
    with torch.no_grad():
        pred = model(torch.stack([dataset[i][0] for i in range(5)])).argmax(1, keepdim=True)  # (5, 1, 16, 16)
    expected = class_metrics(pred, masks, 3)["dice"][:, 1:].nanmean(1)  # each image's foreground mean
    assert torch.allclose(scores["per_image"]["dice"], expected, equal_nan=True)
    assert scores["dice"] == pytest.approx(expected.double().nanmean().item())
    assert scores["confusion"] == confusion_matrix(pred, masks, 3).tolist()
    binary = LesionDataset(images, (masks > 0).to(torch.uint8), list("abcde"))
    swept = evaluate(Fixed(1).eval(), binary, Inference(size=16, tta=False), runtime)
    assert list(swept["dice_by_threshold"]) == list(THRESHOLDS) and swept["dice_sweep"].shape == (5, len(THRESHOLDS))
    assert "per_class" not in swept and "confusion" not in swept  # two classes: the lesion's scores are the means


def test_a_gray_encoders_summed_first_convolution_equals_the_rgb_weights_on_the_image_repeated():
    import torchvision

    torch.manual_seed(0)
    weights = torchvision.models.resnet34().state_dict()  # random, as the reference; ImageNet's load the same way
    rgb, gray = ResNet34Encoder(), ResNet34Encoder(in_channels=1)
    rgb.load_torchvision_state_dict(weights)
    gray.load_torchvision_state_dict(weights)
    mean, std = normalisation(1)
    image = (torch.rand(2, 1, 64, 64) - mean[0]) / std[0]  # (B, 1, H, W) normalised gray
    assert gray.conv1.weight.shape == (64, 1, 7, 7)
    assert torch.allclose(gray.conv1(image), rgb.conv1(image.expand(-1, 3, -1, -1)), atol=1e-5)
    # through the whole encoder in float64, where the CPU's rounding (float32's differs from CPU to CPU and grows
    # with the maps, up to ~200 here) is negligible; what is left is the float32 rounding of the summed weights,
    # about 4e-8 of each map's largest value (a layer loaded wrong is off by a relative error of order 1)
    rgb.double().eval(), gray.double().eval()
    for a, b in zip(gray(image.double()), rgb(image.double().expand(-1, 3, -1, -1))):
        assert (a - b).abs().max() <= 1e-6 * b.abs().max(), (a - b).abs().max()


def test_models_take_the_datas_channels_and_classes():
    recipe = Recipe(base_channels=4, encoder_weights="none")
    for spec, outputs in ((DataSpec(1, ("bg", "a", "b")), 3), (DataSpec(3, ("bg", "lesion")), 1)):
        for name in ("unet", "resunet34"):
            model = new_model(Recipe(**{**recipe.__dict__, "model": name}), spec).eval()
            assert model(torch.zeros(1, spec.channels, 32, 32)).shape == (1, outputs, 32, 32)
    assert normalisation(3)[0] == (0.485, 0.456, 0.406) and normalisation(1) == ((0.449,), (0.226,))
    assert isinstance(UNet(in_channels=1), UNet)


def test_every_medsegbench_name_is_known_with_its_channels_and_classes():
    from medsegbench.info import INFO

    assert dataset_names() == tuple(INFO) and len(dataset_names()) == 35
    assert spec_of("wbc") == DataSpec(3, ("background", "cytoplasm", "nucleus"))
    assert spec_of("busi").channels == 1 and len(spec_of("abdomenus").classes) == 9
    assert spec_of("isic2016").classes == ("background", "foreground")


def test_synthetic_data_of_three_classes_and_gray():
    rgb = make_dataset("synthetic", "val", size=48, limit=6, classes=3)
    gray = make_dataset("synthetic", "val", size=48, limit=6, classes=3, channels=1)
    binary = make_dataset("synthetic", "val", size=48, limit=6)
    assert rgb.spec == DataSpec(3, ("background", "lesion", "ink")) and gray.spec.channels == 1
    assert set(rgb.masks.unique().tolist()) == {0, 1, 2} and torch.equal(rgb.masks, gray.masks)
    assert torch.equal(binary.masks, ((rgb.masks == 1) | (binary.masks == 1)).to(torch.uint8))  # the same lesions
    image, mask, _ = gray[0]
    assert image.shape == (1, 48, 48) and mask.max() <= 2
    with pytest.raises(DataError, match="2 or 3 classes"):
        make_dataset("synthetic", "val", size=48, classes=5)


def test_augmentation_moves_label_maps_by_nearest_neighbour_only():
    """Class indices are never interpolated: rotated, zoomed, shifted, flipped and resized, a map of 0, 1 and 2
    holds 0, 1 and 2 only (a bilinear resize would make 1s on the edges between 0 and 2)."""
    from minunet.transforms import Resize, train_transforms

    labels = torch.zeros(1, 40, 40, dtype=torch.uint8)
    labels[:, 10:30, 5:20], labels[:, 10:30, 20:35] = 2, 0
    labels[:, 30:, :] = 1
    image = torch.randint(0, 256, (1, 40, 40), dtype=torch.uint8)  # gray
    g = torch.Generator()
    pipeline = train_transforms(g, scale=0.2, shift=0.1, mean=normalisation(1)[0], std=normalisation(1)[1])
    for seed in range(20):
        g.manual_seed(seed)
        x, y = pipeline(image, labels)
        assert x.shape == (1, 40, 40) and set(y.unique().tolist()) <= {0, 1, 2}
    two = (labels == 2).to(torch.uint8) * 2  # classes 0 and 2 only, side by side
    _, small = Resize(17)(image, two)
    assert set(small.unique().tolist()) == {0, 2}  # a bilinear resize would invent class 1 on their border:
    assert 1 in F.interpolate(two[None].float(), size=17, mode="bilinear").round().unique().tolist()


def test_a_class_in_no_image_is_named_and_its_scores_are_nan_not_one():
    # a model that predicts only background, on 3-class label maps without class 2: the old convention gave
    # class 2 Dice 1 and the model a mean of 0.5; left out, class 2 is named and the mean is class 1's alone
    truth = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    truth[:, :, :2, :2] = 1
    acc = MetricAccumulator(("background", "cytoplasm", "nucleus"))
    acc.update(torch.zeros_like(truth), truth)
    means = acc.compute()
    assert means["absent"] == ["nucleus"] and means["per_class"]["nucleus"]["dice"] != means["per_class"]["nucleus"]
    assert means["dice"] == 0.0 and means["per_class"]["cytoplasm"]["dice"] == 0.0
    empty = MetricAccumulator(("background", "a", "b"))  # nothing in any image, nothing predicted
    assert empty.update(torch.zeros_like(truth), torch.zeros_like(truth))["dice"].isnan().all()
    assert empty.compute()["absent"] == ["a", "b"]


def test_a_split_without_a_class_says_so_in_a_note():
    from minunet.data import LesionDataset

    masks = torch.zeros(3, 1, 8, 8, dtype=torch.uint8)
    masks[0, :, :4, :4] = 1
    dataset = LesionDataset(torch.zeros(3, 3, 8, 8, dtype=torch.uint8), masks, ["a", "b", "c"],
                            classes=("background", "lesion", "ink"))
    assert [n for n in dataset.notes if "'ink' is in no mask" in n] and not [n for n in dataset.notes if "lesion'" in n]
    assert dataset.subset([0, 1]).notes.count(dataset.notes[0]) == 1  # said once, also in a subset
