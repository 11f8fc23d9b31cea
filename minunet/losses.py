"""Losses for segmentation of any number of classes, written out: cross-entropy (BCE for two classes), soft
Dice, soft Jaccard, and the weighted sums of cross-entropy with each overlap loss. `LOSSES` names them for the
command line (the training recipe's default is in minunet.recipe).

Two classes are K = 2 with one logit. A model of two classes gives one logit per pixel, (B, 1, H, W), whose
sigmoid is the lesion's probability, and its target is the mask (B, 1, H, W) in {0, 1}; a model of K > 2
classes gives K logits, (B, K, H, W), whose softmax is each class's probability, and its target holds class
indices (B, 1, H, W). The two agree: softmax((0, x))[1] = sigmoid(x), so the cross-entropy of the logits (0, x)
is the BCE of x and the foreground's soft Dice is the lesion's (tests/test_multiclass.py checks both). The overlap
losses score the foreground, the lesion or the classes 1..K-1 (the background, most of every image, would
swamp them), per image and class, then take the mean.

Half-precision inputs (float16, bfloat16), as produced under autocast, are upcast to float32, so the loss is
always computed and returned in float32 or float64.
"""
import torch
from torch import nn


def _upcast(x):
    """Return `x` as float32 if it is float16 or bfloat16, else unchanged."""
    if x.dtype in (torch.float16, torch.bfloat16):
        return x.float()
    return x


def _check_shapes(x, target, name):
    """Raise a ValueError unless x (called `name` in the message) is (B, 1 or K, H, W) and target (B, 1, H, W)."""
    if target.shape != ((x.shape[0], 1, *x.shape[2:]) if x.dim() == 4 else x.shape):
        raise ValueError(f"{name} and target must have the same shape (target: one channel, of class indices "
                         f"for K channels), got {tuple(x.shape)} and {tuple(target.shape)}")
    if x.dim() != 4:
        raise ValueError(f"{name} and target must be shaped (B, 1, H, W), got {tuple(x.shape)}")


def activate(logits):
    """Probabilities of logits: the sigmoid of one channel (B, 1, H, W), the lesion's; the softmax over K
    channels (B, K, H, W), each class's. Half-precision logits give float32."""
    x = _upcast(logits)
    # The output activation: one logit (two classes) takes the sigmoid, K logits (K > 2 classes) the softmax
    return torch.sigmoid(x) if x.shape[1] == 1 else torch.softmax(x, 1)


def bce_with_logits(logits, target):
    """Binary cross-entropy of sigmoid(logits) against target, mean over all pixels.

    For a logit x and a target y the loss is -[y log s(x) + (1 - y) log(1 - s(x))], s the sigmoid.
    Taking logs of s(x) breaks for large |x|: in float32, s(x) rounds to exactly 1 above x = 17,
    and log(1 - s(x)) = log(0) = -inf. The same quantity, rearranged so that exp only ever sees
    a number <= 0, is

        loss(x, y) = max(x, 0) - x * y + log(1 + exp(-|x|))

    which is finite for every finite x. Its gradient is s(x) - y. The result equals
    torch.nn.functional.binary_cross_entropy_with_logits(logits, target), values and gradients.

    logits: (B, 1, H, W) float; target: (B, 1, H, W) in {0, 1} (soft targets in [0, 1] also work).
    Returns a scalar tensor (float32 for half-precision logits).
    """
    if logits.shape != target.shape:
        raise ValueError(f"logits and target must have the same shape, got {tuple(logits.shape)} and "
                         f"{tuple(target.shape)}")
    if logits.dim() != 4:
        raise ValueError(f"logits and target must be shaped (B, 1, H, W), got {tuple(logits.shape)}")
    x = _upcast(logits)                                # (B, 1, H, W)
    y = target.to(x.dtype)                             # (B, 1, H, W)
    # max(x, 0) written as (x + |x|) / 2: same value, and its gradient at x = 0 is 1/2,
    # which makes the total gradient there s(0) - y = 1/2 - y, as it should be.
    positive_part = (x + x.abs()) / 2                  # (B, 1, H, W)
    loss = positive_part - x * y + torch.log1p(torch.exp(-x.abs()))  # (B, 1, H, W)
    return loss.mean()


def cross_entropy(logits, target):
    """Cross-entropy of the logits' probabilities (`activate`) against target, mean over all pixels: for one
    logit, bce_with_logits; for K, minus the log of the true class's softmax probability, per pixel.

    The softmax one is written as logsumexp(x) - x[target], with logsumexp(x) = m + log(sum exp(x - m)),
    m = max(x), so that exp never sees a positive number; it equals
    torch.nn.functional.cross_entropy(logits, target[:, 0].long()).
    logits: (B, 1 or K, H, W); target: (B, 1, H, W), the mask or class indices. Returns a scalar tensor.
    """
    _check_shapes(logits, target, "logits")
    if logits.shape[1] == 1:  # one logit (two classes): the cross-entropy of its sigmoid, BCE
        return bce_with_logits(logits, target)
    x = _upcast(logits)  # (B, K, H, W)
    m = x.amax(1, keepdim=True).detach()  # (B, 1, H, W); a constant shift: its gradient cancels
    logsumexp = m + torch.log(torch.exp(x - m).sum(1, keepdim=True))  # (B, 1, H, W)
    picked = x.gather(1, target.long())  # (B, 1, H, W): the logit of the true class
    return (logsumexp - picked).mean()


def foreground(probs, target):
    """The foreground's probabilities and target, (B, F, H, W) each: for one channel the lesion's probabilities
    and the mask itself (F = 1); for K channels classes 1..K-1 and a one-hot map of each (F = K - 1)."""
    _check_shapes(probs, target, "probs")
    p = _upcast(probs)                                 # (B, 1 or K, H, W)
    if p.shape[1] == 1:  # one channel (two classes): the lesion's, whose target is the mask itself
        return p, target.to(p.dtype)
    classes = torch.arange(1, p.shape[1], device=target.device).view(1, -1, 1, 1)  # (1, K-1, 1, 1)
    return p[:, 1:], (target.long() == classes).to(p.dtype)  # (B, K-1, H, W) each


def dice_coefficient(probs, target, smooth=1.0):
    """Soft Dice coefficient of the foreground, computed per image (and class) and then averaged.

    For image b and foreground class c (the lesion, or each of classes 1..K-1), with p its probabilities and
    t its target mask, summed over pixels:

        dice_bc = (2 * sum(p * t) + smooth) / (sum(p) + sum(t) + smooth)

    and the result is their mean. `smooth` keeps the ratio defined when both masks are empty (the result is
    then 1) and softens it for tiny masks.

    Why per image: pooling all pixels of the batch into one Dice lets a large lesion drown a small
    one (missing a 20-pixel lesion barely moves a Dice dominated by a 2000-pixel one), whereas the
    ISIC challenge scores each image alone and averages, so every image counts the same here too.

    probs: (B, 1, H, W) in [0, 1] and target (B, 1, H, W) in {0, 1}; or probs (B, K, H, W) and target class
    indices. Returns a scalar tensor.
    """
    p, t = foreground(probs, target)                   # (B, F, H, W) each
    intersection = (p * t).sum(dim=(2, 3))             # (B, F)
    total = p.sum(dim=(2, 3)) + t.sum(dim=(2, 3))      # (B, F)
    dice = (2 * intersection + smooth) / (total + smooth)  # (B, F)
    return dice.mean()


def soft_jaccard(probs, target, smooth=1.0):
    """Soft Jaccard index (intersection over union) of the foreground, per image (and class), then averaged.

    For image b and foreground class c, with p its probabilities and t its target mask, summed over pixels:

        jaccard_bc = (sum(p * t) + smooth) / (sum(p) + sum(t) - sum(p * t) + smooth)

    and the result is their mean: 1 when both masks are empty, per image for the reason given in
    `dice_coefficient`. On hard masks (and smooth = 0) it is the ISIC challenge's Jaccard, J = D / (2 - D).

    probs and target as for `dice_coefficient`. Returns a scalar tensor.
    """
    p, t = foreground(probs, target)                   # (B, F, H, W) each
    intersection = (p * t).sum(dim=(2, 3))             # (B, F)
    union = p.sum(dim=(2, 3)) + t.sum(dim=(2, 3)) - intersection  # (B, F)
    jaccard = (intersection + smooth) / (union + smooth)  # (B, F)
    return jaccard.mean()


class BCELoss(nn.Module):
    """Cross-entropy on logits as a module: cross_entropy(logits, target), BCE for one logit (two classes),
    softmax cross-entropy for K."""

    def forward(self, logits, target):
        return cross_entropy(logits, target)


class DiceLoss(nn.Module):
    """Soft Dice loss on logits: 1 - dice_coefficient(activate(logits), target, smooth), the probabilities being
    the sigmoid of one logit or the softmax of K.

    Per image, then averaged over the batch (see `dice_coefficient` for why).
    """

    def __init__(self, smooth=1.0):
        super().__init__()
        self.smooth = smooth

    def forward(self, logits, target):
        return 1 - dice_coefficient(activate(logits), target, self.smooth)

    def extra_repr(self):
        return f"smooth={self.smooth}"


class JaccardLoss(nn.Module):
    """Soft Jaccard loss on logits: 1 - soft_jaccard(activate(logits), target, smooth).

    It aims straight at the challenge's score (the Jaccard index), per image, then the batch mean.
    """

    def __init__(self, smooth=1.0):
        super().__init__()
        self.smooth = smooth

    def forward(self, logits, target):
        return 1 - soft_jaccard(activate(logits), target, self.smooth)

    def extra_repr(self):
        return f"smooth={self.smooth}"


class BCEDiceLoss(nn.Module):
    """Weighted sum of the two losses on logits:

        bce_weight * cross_entropy(logits, target) + dice_weight * DiceLoss(smooth)(logits, target)

    Cross-entropy (BCE for one logit) gives every pixel a smooth, well-scaled gradient; Dice scores the overlap
    of the whole mask, per image. That Dice keeps small lesions from being outweighed is the usual argument
    for adding it; tutorial 05 tests it on synthetic lesions, where BCE alone did as well or better.
    """

    def __init__(self, bce_weight=1.0, dice_weight=1.0, smooth=1.0):
        super().__init__()
        self.bce_weight = bce_weight
        self.dice_weight = dice_weight
        self.dice = DiceLoss(smooth)

    def forward(self, logits, target):
        bce = cross_entropy(logits, target)
        return self.bce_weight * bce + self.dice_weight * self.dice(logits, target)

    def extra_repr(self):
        return f"bce_weight={self.bce_weight}, dice_weight={self.dice_weight}"


class BCEJaccardLoss(nn.Module):
    """Weighted sum of the two losses on logits:

        bce_weight * cross_entropy(logits, target) + jaccard_weight * JaccardLoss(smooth)(logits, target)

    As BCEDiceLoss, with the overlap term measured by Jaccard instead of Dice.
    """

    def __init__(self, bce_weight=1.0, jaccard_weight=1.0, smooth=1.0):
        super().__init__()
        self.bce_weight = bce_weight
        self.jaccard_weight = jaccard_weight
        self.jaccard = JaccardLoss(smooth)

    def forward(self, logits, target):
        bce = cross_entropy(logits, target)
        return self.bce_weight * bce + self.jaccard_weight * self.jaccard(logits, target)

    def extra_repr(self):
        return f"bce_weight={self.bce_weight}, jaccard_weight={self.jaccard_weight}"


# The loss classes by their names (a recipe's loss); each is built with no arguments, for any number of
# classes: for K > 2 BCE is its softmax counterpart, cross-entropy (loss_name says so).
LOSSES = {
    "bce": BCELoss,
    "dice": DiceLoss,
    "jaccard": JaccardLoss,
    "bce_dice": BCEDiceLoss,
    "bce_jaccard": BCEJaccardLoss,
}


def loss_name(name, classes):
    """The name of the loss that LOSSES[name] trains on data of `classes` classes: `name` for two; for more,
    with BCE's softmax counterpart, cross-entropy ("bce_jaccard" -> "ce_jaccard")."""
    return name if classes == 2 else name.replace("bce", "ce")


def loss_label(name):
    """A loss's name (loss_name) as people write it: "bce_jaccard" -> "BCE + Jaccard", "ce_jaccard" ->
    "CE + Jaccard"."""
    return " + ".join(part.upper() if part in ("bce", "ce") else part.capitalize() for part in name.split("_"))
