"""Losses for K > 2 classes, written out like minunet.losses: softmax cross-entropy, soft Dice and soft Jaccard
over the foreground classes, and their sums; `loss_for`, the one choice of a recipe's loss for the data.

Every function here takes logits (or probabilities, for the soft scores) shaped (B, K, H, W) and a target of
class indices shaped (B, 1, H, W) (any dtype holding 0..K-1). The binary losses are the case K = 2 with logits
(0, x): softmax((0, x))[1] = sigmoid(x), so cross-entropy is BCE and the foreground's soft Jaccard is the
binary one (tests/test_multiclass.py shows it); minunet keeps one logit and sigmoid for two classes.

The recipe names the loss once (minunet.recipe: "bce_jaccard"); for several classes each name maps to its
softmax counterpart, SOFTMAX_NAMES: bce -> ce, dice -> dice (of the softmax), bce_jaccard -> ce_jaccard, ...
"""
import torch
from torch import nn

from .losses import LOSSES, _upcast


def one_hot(target, k):
    """Class indices (B, 1, H, W) as a float one-hot map (B, K, H, W)."""
    classes = torch.arange(k, device=target.device).view(1, k, 1, 1)  # (1, K, 1, 1)
    return (target.long() == classes).float()  # (B, K, H, W)


def _check(logits, target):
    """Raise ValueError unless logits (B, K, H, W) and target (B, 1, H, W) fit."""
    if logits.dim() != 4 or target.shape != (logits.shape[0], 1, *logits.shape[2:]):
        raise ValueError(f"logits must be (B, K, H, W) and target (B, 1, H, W), got {tuple(logits.shape)} and "
                         f"{tuple(target.shape)}")


def cross_entropy(logits, target):
    """Softmax cross-entropy, mean over all pixels: -log softmax(logits)[target] per pixel.

    Written as logsumexp(x) - x[target], with logsumexp(x) = m + log(sum exp(x - m)), m = max(x), so that exp
    never sees a positive number. Equals torch.nn.functional.cross_entropy(logits, target[:, 0].long()).
    """
    _check(logits, target)
    x = _upcast(logits)  # (B, K, H, W)
    m = x.amax(1, keepdim=True).detach()  # (B, 1, H, W); a constant shift: its gradient cancels
    logsumexp = m + torch.log(torch.exp(x - m).sum(1, keepdim=True))  # (B, 1, H, W)
    picked = x.gather(1, target.long())  # (B, 1, H, W): the logit of the true class
    return (logsumexp - picked).mean()


def soft_overlap(probs, target, kind, smooth=1.0):
    """The soft Dice ("dice") or Jaccard ("jaccard") of each foreground class 1..K-1 per image, averaged over
    those classes and then over the batch: for image b and class c, with p = probs[b, c], t = [target == c],

        dice = (2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth)
        jaccard = (sum(p t) + smooth) / (sum(p) + sum(t) - sum(p t) + smooth)

    A class absent from an image and not predicted there scores 1 (nothing to find, nothing wrongly found).
    probs: (B, K, H, W) in [0, 1]; target: (B, 1, H, W) class indices. Returns a scalar tensor.
    """
    _check(probs, target)
    p = _upcast(probs)[:, 1:]  # (B, K-1, H, W): the foreground classes
    t = one_hot(target, probs.shape[1])[:, 1:].to(p.dtype)  # (B, K-1, H, W)
    shared, total = (p * t).sum((2, 3)), p.sum((2, 3)) + t.sum((2, 3))  # (B, K-1) each
    score = (2 * shared + smooth) / (total + smooth) if kind == "dice" else \
        (shared + smooth) / (total - shared + smooth)  # (B, K-1)
    return score.mean()


class CELoss(nn.Module):
    """Softmax cross-entropy on logits as a module: cross_entropy(logits, target)."""

    def forward(self, logits, target):
        return cross_entropy(logits, target)


class SoftmaxOverlapLoss(nn.Module):
    """1 - the soft Dice or Jaccard (`kind`) of softmax(logits) over the foreground classes, plus
    ce_weight * cross_entropy (0: the overlap alone)."""

    def __init__(self, kind="jaccard", ce_weight=1.0, smooth=1.0):
        super().__init__()
        self.kind, self.ce_weight, self.smooth = kind, ce_weight, smooth

    def forward(self, logits, target):
        probs = torch.softmax(_upcast(logits), 1)  # (B, K, H, W)
        overlap = 1 - soft_overlap(probs, target, self.kind, self.smooth)
        return overlap + self.ce_weight * cross_entropy(logits, target) if self.ce_weight else overlap

    def extra_repr(self):
        return f"kind={self.kind}, ce_weight={self.ce_weight}, smooth={self.smooth}"


# The losses for K > 2 classes by name; each is built with no arguments.
MULTICLASS_LOSSES = {
    "ce": CELoss,
    "dice": lambda: SoftmaxOverlapLoss("dice", ce_weight=0.0),
    "jaccard": lambda: SoftmaxOverlapLoss("jaccard", ce_weight=0.0),
    "ce_dice": lambda: SoftmaxOverlapLoss("dice"),
    "ce_jaccard": lambda: SoftmaxOverlapLoss("jaccard"),
}
SOFTMAX_NAMES = {"bce": "ce", "dice": "dice", "jaccard": "jaccard", "bce_dice": "ce_dice", "bce_jaccard": "ce_jaccard"}


def loss_name(name, classes):
    """The loss a recipe's `name` (a key of minunet.losses.LOSSES) means for data of `classes` classes: itself
    for two, its softmax counterpart (SOFTMAX_NAMES) for more."""
    return name if classes == 2 else SOFTMAX_NAMES[name]


def loss_for(name, classes):
    """The loss module a recipe's `name` means for data of `classes` classes (see loss_name)."""
    return LOSSES[name]() if classes == 2 else MULTICLASS_LOSSES[loss_name(name, classes)]()
