"""The ISIC challenges' segmentation metrics, computed per image.

Masks are shaped (B, 1, H, W) and may be bool, 0/1 numbers, or probabilities: a pixel is
foreground where its value is > 0.5 (so a probability of exactly 0.5 is background). Pass
probabilities, not logits: apply torch.sigmoid to a model's output first.

As the challenges scored them, each metric is computed from one image's confusion counts
(TP, FP, FN, TN), and a dataset's score is the mean of the per-image values (ISIC 2016 ranked by
the mean Jaccard, Gutman et al., arXiv:1605.01397; the thresholded Jaccard was ISIC 2018's ranking
metric, Codella et al., arXiv:1902.03368):

    accuracy          = (TP + TN) / (TP + TN + FP + FN)
    sensitivity       = TP / (TP + FN)
    specificity       = TN / (TN + FP)
    jaccard           = TP / (TP + FP + FN)
    threshold_jaccard = jaccard if jaccard >= 0.65 else 0
    dice              = 2 TP / (2 TP + FP + FN)

each taken as 1.0 where its denominator is 0, minunet's convention (for instance, Dice and Jaccard
are 1 when both the prediction and the target are empty: nothing to find, nothing wrongly found).
"""
import torch

THRESHOLD_JACCARD = 0.65
METRICS = {  # each metric's definition per image, in the order minunet prints them
    "dice": "2 TP / (2 TP + FP + FN): overlap of prediction and lesion, twice the shared area over both areas.",
    "jaccard": "TP / (TP + FP + FN): shared area over the area of prediction and lesion together (ISIC 2016 "
               "ranked by its mean).",
    "threshold_jaccard": f"Jaccard if it is at least {THRESHOLD_JACCARD}, else 0 (ISIC 2018's ranking score).",
    "accuracy": "(TP + TN) / (TP + TN + FP + FN): the fraction of pixels labelled right.",
    "sensitivity": "TP / (TP + FN): the fraction of the lesion that was found.",
    "specificity": "TN / (TN + FP): the fraction of the skin that was left alone.",
}
METRIC_NAMES = tuple(METRICS)


def to_binary_mask(mask):
    """Return a bool mask: `mask` itself if bool, else `mask > 0.5`."""
    if mask.dtype == torch.bool:
        return mask
    return mask > 0.5


def confusion_counts(pred, target):
    """Per-image confusion counts (TP, FP, FN, TN), each an int64 tensor of shape (B,).

    pred, target: (B, 1, H, W) masks (bool, 0/1 or probabilities; foreground is > 0.5).
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, "
                         f"got {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.dim() != 4:
        raise ValueError(f"pred and target must be shaped (B, 1, H, W), got {tuple(pred.shape)}")
    p = to_binary_mask(pred).flatten(1)                # (B, C*H*W)
    t = to_binary_mask(target).flatten(1)              # (B, C*H*W)
    tp = (p & t).sum(dim=1)                            # (B,)
    fp = (p & ~t).sum(dim=1)                           # (B,)
    fn = (~p & t).sum(dim=1)                           # (B,)
    tn = (~p & ~t).sum(dim=1)                          # (B,)
    return tp, fp, fn, tn


def _ratio(numerator, denominator):
    """numerator / denominator as float32, elementwise, and 1.0 where the denominator is 0."""
    num = numerator.float()                            # (B,)
    den = denominator.float()                          # (B,)
    safe_den = torch.where(den > 0, den, torch.ones_like(den))
    return torch.where(den > 0, num / safe_den, torch.ones_like(den))


def isic_metrics(pred, target):
    """The six ISIC challenge metrics of each image, as a dict of float32 tensors of shape (B,).

    Keys: METRIC_NAMES, "dice", "jaccard", "threshold_jaccard", "accuracy", "sensitivity", "specificity"
    (formulas in this module's docstring). pred, target: (B, 1, H, W) masks, bool, 0/1 or
    probabilities (foreground is > 0.5). The dataset score is the mean of each tensor over images.
    """
    tp, fp, fn, tn = confusion_counts(pred, target)    # each (B,)
    jaccard = _ratio(tp, tp + fp + fn)                 # (B,)
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "jaccard": jaccard,
        "threshold_jaccard": torch.where(jaccard >= THRESHOLD_JACCARD, jaccard, torch.zeros_like(jaccard)),
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
    }


class MetricAccumulator:
    """Collects the ISIC metrics of every image over a stream of batches.

    Usage in an evaluation loop:

        acc = MetricAccumulator()
        for images, masks, _ in loader:
            probs = torch.sigmoid(model(images))
            acc.update(probs, masks)
        scores = acc.compute()          # {"accuracy": 0.93, ..., "dice": 0.85, "count": 90}
        worst = acc.per_image()["dice"].argsort()[:5]   # indices, in the order images were fed

    The means weigh every image equally, whatever the batch sizes, so they equal
    isic_metrics on all the images at once, averaged.
    """

    def __init__(self):
        self.reset()

    def reset(self):
        """Forget every image seen so far."""
        self._values = {name: [] for name in METRIC_NAMES}  # name -> list of (B,) CPU tensors
        self._count = 0

    @property
    def count(self):
        """The number of images seen since the last reset."""
        return self._count

    def update(self, pred, target):
        """Add one batch, pred and target (B, 1, H, W) masks; return that batch's isic_metrics."""
        batch = isic_metrics(pred.detach(), target.detach())
        for name in METRIC_NAMES:
            self._values[name].append(batch[name].cpu())
        self._count += target.shape[0]
        return batch

    def per_image(self):
        """Each metric of every image seen, as a dict of float32 CPU tensors of shape (count,)."""
        return {name: torch.cat(chunks) if chunks else torch.zeros(0)
                for name, chunks in self._values.items()}

    def compute(self):
        """The mean of each metric over every image seen, as python floats, plus "count" (an int)."""
        if self._count == 0:
            raise ValueError("MetricAccumulator.compute() needs at least one image: call update() first")
        means = {name: values.double().mean().item() for name, values in self.per_image().items()}
        means["count"] = self._count
        return means
