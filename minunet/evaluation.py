"""Scoring a model on a dataset with the ISIC challenge's metrics, as `minunet evaluate` and validation do.

Each prediction is scored against the ground truth at the mask's own resolution where the dataset keeps it
(`dataset.original_mask(i)`, as the challenge scored), else at the working size: the probabilities are resized
bilinearly to the mask, then `Inference.masks` decides each pixel. Where the masks of a batch share one size, the
batch is scored at once on the model's device; else image by image. For K > 2 classes each class is scored
as its own mask and an image's score is the mean over its foreground classes (minunet.metrics). Where a
threshold decides the pixels (two classes) the Dice is also scored at every threshold of THRESHOLDS.
"""
from dataclasses import replace

import torch
from torch.utils.data import DataLoader

from .device import Runtime, default_workers
from .errors import DataError
from .inference import Inference, logits_of, resize_probabilities
from .losses import LOSSES
from .pictures import shown_at
from .metrics import MetricAccumulator, isic_metrics
from .recipe import Recipe
from .transforms import Normalize

THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05, 0.10, ..., 0.95: the threshold sweep


class Scores:
    """The ISIC metrics of each image scored so far, its lesion's and prediction's areas (fractions of the
    image; for K > 2 classes, of the foreground), and, where a threshold decides (two classes), its Dice at
    every threshold of THRESHOLDS (of the masks as thresholded, not post-processed)."""

    def __init__(self, inference):
        self.inference, self.metrics = inference, MetricAccumulator(inference.spec.classes)
        self.sweep_at = [replace(inference, threshold=t, postprocess=False) for t in THRESHOLDS] \
            if inference.thresholded else []  # K > 2: the argmax decides, no threshold to sweep
        self.sweep, self.areas = [], []

    def add(self, probs, truth):
        """probs (B, 1, h, w) in [0, 1] and truth (B, 1, H, W) in {0, 1} (for K > 2: (B, K, h, w) and class
        indices), on one device; returns the predicted masks (B, 1, H, W) bool (class indices), as scored."""
        probs = resize_probabilities(probs, truth.shape[-2:])  # (B, 1 or K, H, W)
        pred = self.inference.masks(probs)  # (B, 1, H, W) bool or class indices
        truth = truth.to(pred.dtype)  # (B, 1, H, W), as the prediction: bool or class indices
        self.metrics.update(pred, truth)
        self.areas.append(torch.stack([(truth > 0).float().mean((1, 2, 3)), (pred > 0).float().mean((1, 2, 3))],
                                      1).cpu())
        if self.sweep_at:
            self.sweep.append(torch.stack([isic_metrics(at.masks(probs), truth)["dice"] for at in self.sweep_at],
                                          1).cpu())  # (B, len(THRESHOLDS))
        return pred

    def per_image(self):
        """Each metric of every image, plus "lesion_area" and "predicted_area", as (count,) tensors."""
        areas = torch.cat(self.areas)  # (count, 2)
        return dict(self.metrics.per_image(), lesion_area=areas[:, 0], predicted_area=areas[:, 1])

    def threshold_sweep(self):
        """Where a threshold decides (two classes): {"dice_by_threshold": {threshold: mean Dice over the images
        (0 for none)}, "dice_sweep": each image's Dice at each threshold, (count, len(THRESHOLDS))}; else {}."""
        if not self.sweep_at:
            return {}
        sweep = torch.cat(self.sweep) if self.sweep else torch.zeros(0, len(THRESHOLDS))  # (count, len(THRESHOLDS))
        means = sweep.double().sum(0) / max(1, len(sweep))  # (len(THRESHOLDS),)
        return dict(dice_by_threshold=dict(zip(THRESHOLDS, means.tolist())), dice_sweep=sweep)


@torch.no_grad()
def evaluate(model, dataset, inference=None, runtime=None, loss_fn=None, indices=None, pictures=False):
    """The ISIC metrics of `model` on `dataset`: a dict of the mean of each metric over the images, plus
    "count", "loss", and per image: "ids" and "per_image" (each metric and the lesion's and prediction's areas,
    (count,) tensors in order). Where a threshold decides (two classes) also "dice_by_threshold" ({threshold:
    mean Dice} over THRESHOLDS) and "dice_sweep" (each image's Dice at each threshold, (count, len(THRESHOLDS))).

    dataset items are (image, mask) or (image, mask, id). inference: how probabilities become masks (default
    Inference(): the recipe's, flip TTA on). runtime: device, precision, batch size, workers (default
    Runtime()). loss_fn: the loss reported as "loss" (default: the recipe's training loss). indices: score only
    these items. pictures=True adds "pictures": per image (image (3, S, S) uint8, truth (S, S) bool,
    prediction (S, S) bool) at the working size, the prediction being the mask scored (for figures, reports;
    gray images shown as RGB; for K > 2 classes, truth and prediction are class indices).
    For K > 2 classes (inference.spec) the means are over each image's foreground classes, and the result also
    holds "per_class" ({class name: {metric: mean}}) and "confusion" (true x predicted pixel counts).
    """
    inference, runtime = inference or Inference(), runtime or Runtime()
    device, amp_dtype = runtime.choose()
    was_training = model.training
    model.eval().to(device)
    indices = list(range(len(dataset)) if indices is None else indices)
    if not len(dataset):
        raise DataError("the dataset holds no images: there is nothing to evaluate")
    scores, loss_sum = Scores(inference), 0.0
    if not indices:  # a process's share of a dataset smaller than the group
        return dict(count=0, loss=0.0, dice=0.0, jaccard=0.0, **scores.threshold_sweep())
    batch_size = runtime.batch_size
    workers = default_workers(device) if runtime.workers is None else runtime.workers
    loader = DataLoader(dataset, batch_size=batch_size, sampler=indices, num_workers=workers,
                        pin_memory=device.type == "cuda")
    native = getattr(dataset, "original_mask", None)  # the ground truth at its own size, where kept
    loss_fn = loss_fn or LOSSES[Recipe.loss]()
    ids, shown = [], []
    for start, (images, masks, *rest) in zip(range(0, len(indices), batch_size), loader):
        images = images.to(device, non_blocking=True)  # (B, C, S, S)
        masks = masks.to(device, non_blocking=True)  # (B, 1, S, S)
        logits = logits_of(model, images, amp_dtype)  # (B, 1 or K, S, S)
        loss_sum += loss_fn(logits, masks).item() * len(images)
        probs = inference.probabilities(model, images, amp_dtype, logits=logits)  # (B, 1 or K, S, S)
        batch = indices[start:start + batch_size]
        truths = [native(i) for i in batch] if native else list(masks)  # each (1, H, W)
        if all(t.shape == truths[0].shape for t in truths):  # one size: the whole batch at once
            preds = list(scores.add(probs, torch.stack(truths).to(device)))  # each (1, H, W)
        else:
            preds = [scores.add(p[None], t[None].to(device))[0] for p, t in zip(probs, truths)]
        ids += list(rest[0]) if rest else batch
        if pictures:
            pixels = (Normalize(inference.mean, inference.std).undo(images) * 255).round().to(torch.uint8).cpu()
            pixels = pixels.expand(-1, 3, -1, -1)  # (B, 3, S, S): gray shown as RGB
            shown += [(image, mask[0].to(pred.dtype), shown_at(pred, mask.shape[-2:]).cpu())
                      for image, mask, pred in zip(pixels, masks.cpu(), preds)]
    model.train(was_training)
    result = scores.metrics.compute()
    result.update(loss=loss_sum / len(indices), ids=ids, per_image=scores.per_image(), **scores.threshold_sweep())
    if pictures:
        result["pictures"] = shown
    return result


def best_threshold(dice_by_threshold):
    """The threshold with the highest mean Dice (the one nearest 0.5 among equals)."""
    return max(dice_by_threshold, key=lambda t: (dice_by_threshold[t], -abs(t - 0.5)))
