"""The ISIC metrics for K > 2 classes: each class scored as its own binary mask (pixels of that class against
the rest), per image, with minunet.metrics' definitions and its convention that a ratio with a denominator of 0
is 1.0 (a class absent from an image and not predicted there scores Dice 1); an image's score is the mean over
its foreground classes 1..K-1, and a dataset's the mean over images. Also the confusion matrix between classes.
"""
import torch

from .metrics import METRIC_NAMES, isic_metrics


def class_metrics(pred, target, k):
    """{metric: (B, K) float32}: each ISIC metric of each class c in each image, pred and target (B, 1, H, W)
    class indices (class c is `== c`)."""
    per_class = [isic_metrics(pred == c, target == c) for c in range(k)]  # K dicts of (B,)
    return {name: torch.stack([scores[name] for scores in per_class], 1) for name in METRIC_NAMES}


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
        return {name: values[:, 1:].mean(1) for name, values in batch.items()}

    def per_class(self):
        """{metric: (count, K)}: each metric of each class in every image seen."""
        return {name: torch.cat(chunks) for name, chunks in self._values.items()}

    def per_image(self):
        """{metric: (count,)}: each image's mean over the foreground classes, then each class's own, as
        "metric/class name"."""
        scores = {name: values[:, 1:].mean(1) for name, values in self.per_class().items()}
        for name, values in self.per_class().items():
            scores.update({f"{name}/{label}": values[:, c] for c, label in enumerate(self.classes)})
        return scores

    def compute(self):
        """The mean of each metric over images (each image's mean over foreground classes), "count",
        "per_class" ({class name: {metric: mean over images}}) and "confusion" ((K, K) nested lists)."""
        if self._count == 0:
            raise ValueError("ClassMetricAccumulator.compute() needs at least one image: call update() first")
        per_class = self.per_class()
        means = {name: values[:, 1:].double().mean().item() for name, values in per_class.items()}
        means["per_class"] = {label: {name: per_class[name][:, c].double().mean().item() for name in METRIC_NAMES}
                              for c, label in enumerate(self.classes)}
        means["confusion"], means["count"] = self.confusion.tolist(), self._count
        return means
