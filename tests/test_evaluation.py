"""evaluate scores a batch at once where the masks share a size and image by image where they do not, with the
same numbers as scoring every image alone (issue 16); test-time flips, the threshold sweep and post-processing
are what they say (issue 13)."""
import pytest
import torch
import torch.nn.functional as F

from minunet.data import LesionDataset
from minunet.device import Runtime
from minunet.evaluation import THRESHOLDS, best_threshold, evaluate
from minunet.inference import FLIPS, Inference, probabilities
from minunet.metrics import isic_metrics
from minunet.postprocess import clean_mask

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class Lopsided(torch.nn.Module):
    """A fixed model whose answer depends on where a pixel is (so flips change it): logits from the image's
    first channel plus a left-to-right ramp."""

    def forward(self, x):  # (B, 3, H, W)
        ramp = torch.linspace(-2, 2, x.shape[-1], device=x.device)  # (W,)
        return 3 * x[:, :1] + ramp  # (B, 1, H, W)


def dataset_with_sizes(sizes, seed=0):
    """Items at 32 x 32 whose ground truths are kept at `sizes` (one (H, W) per item), as challenge folders do."""
    g = torch.Generator().manual_seed(seed)
    n = len(sizes)
    images = (torch.rand(n, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    originals = [(torch.rand(1, h, w, generator=g) > 0.6).to(torch.uint8) for h, w in sizes]
    masks = torch.stack([F.interpolate(m[None].float(), size=(32, 32), mode="nearest")[0] for m in originals])
    return LesionDataset(images, masks.to(torch.uint8), [f"id{i}" for i in range(n)], original_masks=originals)


CPU_FP32_BATCH_4 = Runtime("cpu", "fp32", workers=0, batch_size=4)


def one_by_one(model, dataset, threshold=0.5, tta=False, postprocess=False):
    """The reference: each image alone, its probabilities resized to its own mask, thresholded, scored."""
    scores = []
    for i in range(len(dataset)):
        image, _, _ = dataset[i]
        truth = dataset.original_mask(i)[None].bool()  # (1, 1, H, W)
        p = probabilities(model, image[None], tta=tta)  # (1, 1, 32, 32)
        p = F.interpolate(p, size=truth.shape[-2:], mode="bilinear", align_corners=False)
        pred = clean_mask(p > threshold) if postprocess else p > threshold
        scores.append(isic_metrics(pred, truth))
    return {name: torch.cat([s[name] for s in scores]) for name in scores[0]}


@pytest.mark.parametrize("sizes", [[(48, 64)] * 6, [(48, 64), (30, 40), (48, 64), (32, 32), (50, 20), (48, 64)]],
                         ids=["one size: batched", "mixed sizes: per image"])
@pytest.mark.parametrize("tta, postprocess", [(False, False), (True, False), (False, True)])
def test_evaluate_equals_scoring_each_image_alone(sizes, tta, postprocess):
    dataset, model = dataset_with_sizes(sizes), Lopsided()
    got = evaluate(model, dataset, Inference(tta=tta, postprocess=postprocess), CPU_FP32_BATCH_4)
    want = one_by_one(model, dataset, tta=tta, postprocess=postprocess)
    for name, values in want.items():
        assert torch.allclose(got["per_image"][name], values), name
        assert got[name] == pytest.approx(values.double().mean().item(), abs=1e-6), name
    assert got["ids"] == dataset.ids and got["count"] == len(sizes)
    truth_area = torch.stack([dataset.original_mask(i).float().mean() for i in range(len(sizes))])
    assert torch.allclose(got["per_image"]["lesion_area"], truth_area)


def test_the_threshold_sweep_scores_each_threshold():
    dataset, model = dataset_with_sizes([(48, 64)] * 5), Lopsided()
    got = evaluate(model, dataset, Inference(tta=False), Runtime("cpu", "fp32", workers=0))
    assert list(got["dice_by_threshold"]) == list(THRESHOLDS) and len(THRESHOLDS) == 19
    for t in (0.05, 0.5, 0.8):
        want = one_by_one(model, dataset, threshold=t)["dice"].double().mean().item()
        assert got["dice_by_threshold"][t] == pytest.approx(want, abs=1e-6)
    assert got["dice_by_threshold"][0.5] == pytest.approx(got["dice"], abs=1e-9)
    best = best_threshold(got["dice_by_threshold"])
    assert got["dice_by_threshold"][best] == max(got["dice_by_threshold"].values())


def test_the_per_image_sweep_holds_each_images_dice_at_each_threshold():
    dataset, model = dataset_with_sizes([(48, 64)] * 3 + [(40, 40)] * 2), Lopsided()
    got = evaluate(model, dataset, Inference(tta=False), Runtime("cpu", "fp32", workers=0))
    assert got["dice_sweep"].shape == (5, len(THRESHOLDS))
    for k, t in enumerate(THRESHOLDS):
        assert torch.allclose(got["dice_sweep"][:, k], one_by_one(model, dataset, threshold=t)["dice"]), t
        assert got["dice_sweep"][:, k].double().mean().item() == pytest.approx(got["dice_by_threshold"][t], abs=1e-6)


def test_best_threshold_prefers_the_one_nearest_a_half_among_equals():
    assert best_threshold({0.3: 0.9, 0.45: 0.9, 0.6: 0.8}) == 0.45
    assert best_threshold({0.3: 0.91, 0.5: 0.9}) == 0.3


def test_test_time_flips_average_the_flipped_back_predictions():
    model, x = Lopsided(), torch.rand(2, 3, 8, 12)
    want = sum(torch.sigmoid(model(x.flip(d) if d else x)).flip(d) if d else torch.sigmoid(model(x))
               for d in FLIPS) / 4
    assert torch.allclose(probabilities(model, x, tta=True), want, atol=1e-6)
    assert not torch.allclose(probabilities(model, x, tta=False), want)  # the flips matter for this model
    assert torch.equal(probabilities(model, x), probabilities(model, x, tta=True))  # on by default, as in the CLI
    symmetric = torch.nn.Conv2d(3, 1, 1)  # a 1x1 convolution commutes with flips: TTA changes nothing
    assert torch.allclose(probabilities(symmetric, x, tta=True), probabilities(symmetric, x, tta=False), atol=1e-6)
