"""The ISIC metrics for K > 2 classes: each class scored as its own binary mask (pixels of that class against
the rest), per image, with minunet.metrics' definitions. A class absent from both the truth and the prediction
of an image has nothing to score there: it is left out of that image (NaN), as nnU-Net and MONAI's
`DiceMetric(ignore_empty=True)` do, instead of the binary ISIC convention's 1.0, which would reward a model for
each class an image lacks. An image's score is the mean over its foreground classes 1..K-1 that it scores, and
a dataset's the mean over the images that score any; a class is averaged over the images that score it. Also
the confusion matrix between classes.
"""
import torch

from .metrics import METRIC_NAMES, isic_metrics


def class_metrics(pred, target, k):
    """{metric: (B, K) float32}: each ISIC metric of each class c in each image, pred and target (B, 1, H, W)
    class indices (class c is `== c`); NaN where class c is in neither the truth nor the prediction of an
    image."""
    per_class = [isic_metrics(pred == c, target == c) for c in range(k)]  # K dicts of (B,)
    present = torch.stack([((pred == c) | (target == c)).flatten(1).any(1) for c in range(k)], 1)  # (B, K)
    return {name: torch.stack([scores[name] for scores in per_class], 1).masked_fill(~present, float("nan"))
            for name in METRIC_NAMES}


def foreground_mean(values):
    """(B,) each image's mean over its foreground classes 1..K-1 that it scores (NaN where it scores none), of
    values (B, K)."""
    return values[:, 1:].nanmean(1)


def confusion_matrix(pred, target, k):
    """(K, K) int64 pixel counts: row the true class, column the predicted one."""
    pairs = target.long().flatten() * k + pred.long().flatten()  # (B*H*W,)
    return torch.bincount(pairs, minlength=k * k).view(k, k).cpu()


class ClassMetricAccumulator:
    """Collects the per-class ISIC metrics of every image and the confusion matrix over a stream of batches;
    the multi-class counterpart of minunet.metrics.MetricAccumulator (same methods, same means)."""

    def __init__(self, classes):
        self.classes = tuple(classes)  # the names, background first
        self._values, self._count = {name: [] for name in METRIC_NAMES}, 0  # name -> list of (B, K)
        self.confusion = torch.zeros(len(self.classes), len(self.classes), dtype=torch.int64)

    @property
    def count(self):
        """The number of images seen."""
        return self._count

    def update(self, pred, target):
        """Add one batch, pred and target (B, 1, H, W) class indices; return its per-image means over the
        foreground classes ({metric: (B,)})."""
        k = len(self.classes)
        batch = class_metrics(pred.detach(), target.detach(), k)
        for name in METRIC_NAMES:
            self._values[name].append(batch[name].cpu())
        self.confusion += confusion_matrix(pred, target, k)
        self._count += target.shape[0]
        return {name: foreground_mean(values) for name, values in batch.items()}

    def per_class(self):
        """{metric: (count, K)}: each metric of each class in every image seen."""
        return {name: torch.cat(chunks) for name, chunks in self._values.items()}

    def per_image(self):
        """{metric: (count,)}: each image's mean over the foreground classes, then each class's own, as
        "metric/class name"."""
        scores = {name: foreground_mean(values) for name, values in self.per_class().items()}
        for name, values in self.per_class().items():
            scores.update({f"{name}/{label}": values[:, c] for c, label in enumerate(self.classes)})
        return scores

    def compute(self):
        """The mean of each metric over the images that score any foreground class (each image's mean over the
        classes it scores), "count", "per_class" ({class name: {metric: mean over the images that score it}}),
        "absent" (the names of the classes no image scores: in no truth and no prediction; their means are
        NaN) and "confusion" ((K, K) nested lists)."""
        if self._count == 0:
            raise ValueError("ClassMetricAccumulator.compute() needs at least one image: call update() first")
        per_class = self.per_class()
        means = {name: foreground_mean(values).double().nanmean().item() for name, values in per_class.items()}
        means["per_class"] = {label: {name: per_class[name][:, c].double().nanmean().item() for name in METRIC_NAMES}
                              for c, label in enumerate(self.classes)}
        means["absent"] = [label for c, label in enumerate(self.classes) if per_class["dice"][:, c].isnan().all()]
        means["confusion"], means["count"] = self.confusion.tolist(), self._count
        return means
