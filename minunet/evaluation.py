"""Scoring a model on a dataset with the ISIC challenge's metrics, as `minunet evaluate` and validation do.

Each prediction is scored against the ground truth at the mask's own resolution where the dataset keeps it
(`dataset.original_mask(i)`, as the challenge scored), else at the working size: the probabilities are resized
bilinearly to the mask, then a pixel is lesion where its probability is above the threshold. Where the masks
of a batch share one size, the batch is scored at once on the model's device; else image by image.
"""
import torch
from torch.utils.data import DataLoader

from .device import choose_device, default_workers
from .inference import logits_of, probabilities, resize_probabilities
from .losses import DEFAULT_LOSS, LOSSES
from .metrics import MetricAccumulator, isic_metrics
from .postprocess import clean_mask
from .transforms import Normalize

THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05, 0.10, ..., 0.95: the threshold sweep


class Scores:
    """The ISIC metrics of each image scored so far, its lesion's and prediction's areas (fractions of the
    image), and its Dice at every threshold of THRESHOLDS (of the masks as thresholded, not post-processed)."""

    def __init__(self, threshold, postprocess=False):
        self.threshold, self.postprocess = threshold, postprocess
        self.metrics, self.sweep, self.areas = MetricAccumulator(), [], []

    def add(self, probs, truth):
        """probs (B, 1, H, W) in [0, 1] and truth (B, 1, H, W) in {0, 1}, on one device; returns the
        predicted masks (B, 1, H, W) bool."""
        truth, pred = truth.bool(), probs > self.threshold
        if self.postprocess:
            pred = clean_mask(pred)
        self.metrics.update(pred, truth)
        self.areas.append(torch.stack([truth.float().mean((1, 2, 3)), pred.float().mean((1, 2, 3))], 1).cpu())
        self.sweep.append(torch.stack([isic_metrics(probs > t, truth)["dice"] for t in THRESHOLDS], 1).cpu())
        return pred

    def per_image(self):
        """Each metric of every image, plus "lesion_area" and "predicted_area", as (count,) tensors."""
        areas = torch.cat(self.areas)  # (count, 2)
        return dict(self.metrics.per_image(), lesion_area=areas[:, 0], predicted_area=areas[:, 1])

    def dice_by_threshold(self):
        """{threshold: mean Dice over the images} for each threshold of THRESHOLDS."""
        means = torch.cat(self.sweep).double().mean(0)  # (len(THRESHOLDS),)
        return dict(zip(THRESHOLDS, means.tolist()))


@torch.no_grad()
def evaluate(model, dataset, device="auto", precision="auto", batch_size=16, indices=None, per_image=False,
             tta=False, threshold=0.5, postprocess=False, loss_fn=None, workers=None, collect=None):
    """The ISIC metrics of `model` on `dataset`: a dict of means over images, plus "loss", "count" and
    "dice_by_threshold" ({threshold: mean Dice} over THRESHOLDS).

    dataset items are (image, mask) or (image, mask, id). indices: score only these items. tta: average
    over flips (minunet.inference.probabilities). postprocess: keep each mask's largest region, holes filled
    (minunet.postprocess.clean_mask). per_image=True adds "per_image" (each metric and the lesion's and the
    prediction's areas per image, in order), "ids" and "dice_sweep" (each image's Dice at each threshold of
    THRESHOLDS, a (count, len(THRESHOLDS)) tensor). collect: a list to which (id, image (3, S, S) uint8,
    truth (S, S) bool, prediction (S, S) bool) is appended per image at the working size (for a report).
    loss_fn: the loss reported as "loss" (default LOSSES[DEFAULT_LOSS], the training default). workers:
    DataLoader worker processes that read the items (default minunet.device.default_workers).
    """
    device, amp_dtype = choose_device(device, precision)
    was_training = model.training
    model.eval().to(device)
    indices = list(range(len(dataset)) if indices is None else indices)
    if not indices:
        return dict(count=0, loss=0.0, dice=0.0, jaccard=0.0, dice_by_threshold={t: 0.0 for t in THRESHOLDS})
    workers = default_workers(device) if workers is None else workers
    loader = DataLoader(dataset, batch_size=batch_size, sampler=indices, num_workers=workers,
                        pin_memory=device.type == "cuda")
    native = getattr(dataset, "original_mask", None)  # the ground truth at its own size, where kept
    scores, loss_fn, loss_sum, ids = Scores(threshold, postprocess), loss_fn or LOSSES[DEFAULT_LOSS](), 0.0, []
    for start, (images, masks, *rest) in zip(range(0, len(indices), batch_size), loader):
        images = images.to(device, non_blocking=True)  # (B, 3, S, S)
        masks = masks.to(device, non_blocking=True)  # (B, 1, S, S)
        logits = logits_of(model, images, amp_dtype)  # (B, 1, S, S)
        loss_sum += loss_fn(logits, masks).item() * len(images)
        probs = probabilities(model, images, amp_dtype, tta, logits=logits)  # (B, 1, S, S)
        batch = indices[start:start + batch_size]
        truths = [native(i) for i in batch] if native else list(masks)  # each (1, H, W)
        if all(t.shape == truths[0].shape for t in truths):  # one size: the whole batch at once
            truth = torch.stack(truths).to(device)  # (B, 1, H, W)
            scores.add(resize_probabilities(probs, truth.shape[-2:]), truth)
        else:
            for p, t in zip(probs, truths):
                scores.add(resize_probabilities(p[None], t.shape[-2:]), t[None].to(device))
        batch_ids = list(rest[0]) if rest else batch
        if collect is not None:
            shown = (Normalize().undo(images) * 255).round().to(torch.uint8).cpu()  # (B, 3, S, S)
            preds = probs > threshold
            preds = (clean_mask(preds) if postprocess else preds).cpu()  # (B, 1, S, S)
            collect += zip(batch_ids, shown, masks.cpu().bool()[:, 0], preds[:, 0])
        ids += batch_ids
    model.train(was_training)
    result = scores.metrics.compute()
    result.update(loss=loss_sum / len(indices), dice_by_threshold=scores.dice_by_threshold())
    if per_image:
        result["per_image"], result["ids"], result["dice_sweep"] = scores.per_image(), ids, torch.cat(scores.sweep)
    return result


def best_threshold(dice_by_threshold):
    """The threshold with the highest mean Dice (the one nearest 0.5 among equals)."""
    return max(dice_by_threshold, key=lambda t: (dice_by_threshold[t], -abs(t - 0.5)))
