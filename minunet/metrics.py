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

Several classes (K > 2, masks of class indices): each class is scored as its own mask, its pixels against the
rest (`class_metrics`), and an image's score is the mean over its foreground classes 1..K-1. A class absent
from both the truth and the prediction of an image has nothing to score there: it is left out of that image
(NaN), as nnU-Net and MONAI's `DiceMetric(ignore_empty=True)` do, instead of the 1.0 above, which would reward
a model for each class an image lacks. A dataset's score is then the mean over the images that score any
class, and a class's the mean over the images that score it. `confusion_matrix` counts the pixels of each
true class against each predicted one.
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


def class_metrics(pred, target, k=2):
    """{metric: (B, K) float32}: each ISIC metric of each class c in each image, class c's pixels against the
    rest. pred, target (B, 1, H, W): for two classes masks (bool, 0/1 or probabilities: the lesion is > 0.5),
    for K > 2 class indices (class c is `== c`). A class in neither the truth nor the prediction of an image
    scores 1.0 for two classes, NaN for K > 2 (see the module's docstring)."""
    if k == 2:  # a mask: its pixels > 0.5 are class 1, the lesion
        pred, target = to_binary_mask(pred), to_binary_mask(target)
    per_class = [isic_metrics(pred == c, target == c) for c in range(k)]  # K dicts of (B,)
    scores = {name: torch.stack([s[name] for s in per_class], 1) for name in METRIC_NAMES}  # each (B, K)
    if k == 2:  # the challenge's rule for an empty mask predicted empty: 1.0
        return scores
    present = torch.stack([((pred == c) | (target == c)).flatten(1).any(1) for c in range(k)], 1)  # (B, K)
    return {name: values.masked_fill(~present, float("nan")) for name, values in scores.items()}


def foreground_mean(values):
    """(B,) each image's mean over its foreground classes 1..K-1 that it scores (NaN where it scores none), of
    values (B, K); for two classes the lesion's own."""
    return values[:, 1:].nanmean(1)


def confusion_matrix(pred, target, k):
    """(K, K) int64 pixel counts of class indices pred and target: row the true class, column the predicted one."""
    pairs = target.long().flatten() * k + pred.long().flatten()  # (B*H*W,)
    return torch.bincount(pairs, minlength=k * k).view(k, k).cpu()


class MetricAccumulator:
    """Collects the ISIC metrics of every image over a stream of batches, for any number of classes.

    Usage in an evaluation loop:

        acc = MetricAccumulator()       # two classes; MetricAccumulator(class_names) for K > 2
        for images, masks, _ in loader:
            probs = torch.sigmoid(model(images))
            acc.update(probs, masks)
        scores = acc.compute()          # {"accuracy": 0.93, ..., "dice": 0.85, "count": 90}
        worst = acc.per_image()["dice"].argsort()[:5]   # indices, in the order images were fed

    The means weigh every image equally, whatever the batch sizes, so they equal isic_metrics on all the
    images at once, averaged. classes: the names of the classes, background first (default: background and
    lesion); for K > 2 each image scores the mean over its foreground classes (see the module's docstring), and
    each class's own scores and the confusion matrix are kept too.
    """

    def __init__(self, classes=("background", "lesion")):
        self.classes = tuple(classes)
        self.reset()

    def reset(self):
        """Forget every image seen so far."""
        k = len(self.classes)
        self._values = {name: [] for name in METRIC_NAMES}  # name -> list of (B, K) CPU tensors
        self.confusion = torch.zeros(k, k, dtype=torch.int64)
        self._count = 0

    @property
    def count(self):
        """The number of images seen since the last reset."""
        return self._count

    def update(self, pred, target):
        """Add one batch, pred and target (B, 1, H, W) masks (class indices for K > 2); return each image's
        scores ({metric: (B,)}: isic_metrics for two classes, the mean over the foreground classes for more)."""
        k = len(self.classes)
        batch = class_metrics(pred.detach(), target.detach(), k)  # {metric: (B, K)}
        for name in METRIC_NAMES:
            self._values[name].append(batch[name].cpu())
        if k > 2:  # the confusion between classes (for two, the counts of isic_metrics)
            self.confusion += confusion_matrix(pred, target, k)
        self._count += target.shape[0]
        return {name: foreground_mean(values) for name, values in batch.items()}

    def per_class(self):
        """{metric: (count, K)}: each metric of each class in every image seen."""
        k = len(self.classes)
        return {name: torch.cat(chunks) if chunks else torch.zeros(0, k) for name, chunks in self._values.items()}

    def per_image(self):
        """Each metric of every image seen, as a dict of float32 CPU tensors of shape (count,); for K > 2 also
        each class's own, as "metric/class name"."""
        per_class = self.per_class()
        scores = {name: foreground_mean(values) for name, values in per_class.items()}
        if len(self.classes) > 2:
            for name, values in per_class.items():
                scores.update({f"{name}/{label}": values[:, c] for c, label in enumerate(self.classes)})
        return scores

    def compute(self):
        """The mean of each metric over every image seen (for K > 2, over the images that score any class), as
        python floats, plus "count" (an int). For K > 2 also "per_class" ({class name: {metric: mean over the
        images that score it}}), "absent" (the names of the classes no image scores: in no truth and no
        prediction; their means are NaN) and "confusion" ((K, K) nested lists)."""
        if self._count == 0:
            raise ValueError("MetricAccumulator.compute() needs at least one image: call update() first")
        per_class = self.per_class()
        means = {name: foreground_mean(values).double().nanmean().item() for name, values in per_class.items()}
        means["count"] = self._count
        if len(self.classes) > 2:  # several foreground classes: each one's own (for two, the means above)
            means["per_class"] = {label: {name: per_class[name][:, c].double().nanmean().item()
                                          for name in METRIC_NAMES} for c, label in enumerate(self.classes)}
            means["absent"] = [label for c, label in enumerate(self.classes) if per_class["dice"][:, c].isnan().all()]
            means["confusion"] = self.confusion.tolist()
        return means
