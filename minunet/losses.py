"""Losses for binary segmentation, written out: BCE with logits, soft Dice, soft Jaccard, and the weighted
sums of BCE with each overlap loss. `LOSSES` names them for the command line (the
training recipe's default is in minunet.recipe).

Every function here takes tensors shaped (B, 1, H, W): logits (or probabilities, for
`dice_coefficient` and `soft_jaccard`) and a target mask of the same shape with values in {0, 1}.
Half-precision inputs (float16, bfloat16), as produced under autocast, are upcast to float32,
so the loss is always computed and returned in float32 or float64.
"""
import torch
from torch import nn


def _upcast(x):
    """Return `x` as float32 if it is float16 or bfloat16, else unchanged."""
    if x.dtype in (torch.float16, torch.bfloat16):
        return x.float()
    return x


def _check_shapes(x, target, name):
    """Raise a ValueError unless x (called `name` in the message) and target are (B, C, H, W) alike."""
    if x.shape != target.shape:
        raise ValueError(f"{name} and target must have the same shape, "
                         f"got {tuple(x.shape)} and {tuple(target.shape)}")
    if x.dim() != 4:
        raise ValueError(f"{name} and target must be shaped (B, 1, H, W), got {tuple(x.shape)}")


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
    _check_shapes(logits, target, "logits")
    x = _upcast(logits)                                # (B, 1, H, W)
    y = target.to(x.dtype)                             # (B, 1, H, W)
    # max(x, 0) written as (x + |x|) / 2: same value, and its gradient at x = 0 is 1/2,
    # which makes the total gradient there s(0) - y = 1/2 - y, as it should be.
    positive_part = (x + x.abs()) / 2                  # (B, 1, H, W)
    loss = positive_part - x * y + torch.log1p(torch.exp(-x.abs()))  # (B, 1, H, W)
    return loss.mean()


def dice_coefficient(probs, target, smooth=1.0):
    """Soft Dice coefficient, computed per image and then averaged over the batch.

    For image b, with p its probabilities and t its target mask, summed over channels and pixels:

        dice_b = (2 * sum(p * t) + smooth) / (sum(p) + sum(t) + smooth)

    and the result is mean_b(dice_b). `smooth` keeps the ratio defined when both masks are empty
    (the result is then 1) and softens it for tiny masks.

    Why per image: pooling all pixels of the batch into one Dice lets a large lesion drown a small
    one (missing a 20-pixel lesion barely moves a Dice dominated by a 2000-pixel one), whereas the
    ISIC challenge scores each image alone and averages, so every image counts the same here too.

    probs: (B, 1, H, W) in [0, 1]; target: (B, 1, H, W) in {0, 1}. Returns a scalar tensor.
    """
    _check_shapes(probs, target, "probs")
    p = _upcast(probs)                                 # (B, 1, H, W)
    t = target.to(p.dtype)                             # (B, 1, H, W)
    intersection = (p * t).sum(dim=(1, 2, 3))          # (B,)
    total = p.sum(dim=(1, 2, 3)) + t.sum(dim=(1, 2, 3))  # (B,)
    dice = (2 * intersection + smooth) / (total + smooth)  # (B,)
    return dice.mean()


class DiceLoss(nn.Module):
    """Soft Dice loss on logits: 1 - dice_coefficient(sigmoid(logits), target, smooth).

    Per image, then averaged over the batch (see `dice_coefficient` for why).
    """

    def __init__(self, smooth=1.0):
        super().__init__()
        self.smooth = smooth

    def forward(self, logits, target):
        probs = torch.sigmoid(_upcast(logits))         # (B, 1, H, W)
        return 1 - dice_coefficient(probs, target, self.smooth)

    def extra_repr(self):
        return f"smooth={self.smooth}"


class BCEDiceLoss(nn.Module):
    """Weighted sum of the two losses on logits:

        bce_weight * bce_with_logits(logits, target) + dice_weight * DiceLoss(smooth)(logits, target)

    BCE gives every pixel a smooth, well-scaled gradient; Dice scores the overlap of the whole
    mask, per image. That Dice keeps small lesions from being outweighed is the usual argument for
    adding it; tutorial 05 tests it on synthetic lesions, where BCE alone did as well or better.
    """

    def __init__(self, bce_weight=1.0, dice_weight=1.0, smooth=1.0):
        super().__init__()
        self.bce_weight = bce_weight
        self.dice_weight = dice_weight
        self.dice = DiceLoss(smooth)

    def forward(self, logits, target):
        bce = bce_with_logits(logits, target)
        return self.bce_weight * bce + self.dice_weight * self.dice(logits, target)

    def extra_repr(self):
        return f"bce_weight={self.bce_weight}, dice_weight={self.dice_weight}"


def soft_jaccard(probs, target, smooth=1.0):
    """Soft Jaccard index (intersection over union), computed per image and then averaged over the batch.

    For image b, with p its probabilities and t its target mask, summed over channels and pixels:

        jaccard_b = (sum(p * t) + smooth) / (sum(p) + sum(t) - sum(p * t) + smooth)

    and the result is mean_b(jaccard_b): 1 when both masks are empty, per image for the reason given in
    `dice_coefficient`. On hard masks (and smooth = 0) it is the ISIC challenge's Jaccard, J = D / (2 - D).

    probs: (B, 1, H, W) in [0, 1]; target: (B, 1, H, W) in {0, 1}. Returns a scalar tensor.
    """
    _check_shapes(probs, target, "probs")
    p = _upcast(probs)                                 # (B, 1, H, W)
    t = target.to(p.dtype)                             # (B, 1, H, W)
    intersection = (p * t).sum(dim=(1, 2, 3))          # (B,)
    union = p.sum(dim=(1, 2, 3)) + t.sum(dim=(1, 2, 3)) - intersection  # (B,)
    jaccard = (intersection + smooth) / (union + smooth)  # (B,)
    return jaccard.mean()


class JaccardLoss(nn.Module):
    """Soft Jaccard loss on logits: 1 - soft_jaccard(sigmoid(logits), target, smooth).

    It aims straight at the challenge's score (the Jaccard index), per image, then the batch mean.
    """

    def __init__(self, smooth=1.0):
        super().__init__()
        self.smooth = smooth

    def forward(self, logits, target):
        probs = torch.sigmoid(_upcast(logits))         # (B, 1, H, W)
        return 1 - soft_jaccard(probs, target, self.smooth)

    def extra_repr(self):
        return f"smooth={self.smooth}"


class BCELoss(nn.Module):
    """Binary cross-entropy on logits as a module: bce_with_logits(logits, target), mean over all pixels."""

    def forward(self, logits, target):
        return bce_with_logits(logits, target)


class BCEJaccardLoss(nn.Module):
    """Weighted sum of the two losses on logits:

        bce_weight * bce_with_logits(logits, target) + jaccard_weight * JaccardLoss(smooth)(logits, target)

    As BCEDiceLoss, with the overlap term measured by Jaccard instead of Dice.
    """

    def __init__(self, bce_weight=1.0, jaccard_weight=1.0, smooth=1.0):
        super().__init__()
        self.bce_weight = bce_weight
        self.jaccard_weight = jaccard_weight
        self.jaccard = JaccardLoss(smooth)

    def forward(self, logits, target):
        bce = bce_with_logits(logits, target)
        return self.bce_weight * bce + self.jaccard_weight * self.jaccard(logits, target)

    def extra_repr(self):
        return f"bce_weight={self.bce_weight}, jaccard_weight={self.jaccard_weight}"


# The loss classes by their names (a recipe's loss); each is built with no arguments.
LOSSES = {
    "bce": BCELoss,
    "dice": DiceLoss,
    "jaccard": JaccardLoss,
    "bce_dice": BCEDiceLoss,
    "bce_jaccard": BCEJaccardLoss,
}


def loss_label(name):
    """A loss's name in LOSSES (or minunet.multiclass.MULTICLASS_LOSSES) as people write it: "bce_jaccard" ->
    "BCE + Jaccard", "ce_jaccard" -> "CE + Jaccard"."""
    return " + ".join(part.upper() if part in ("bce", "ce") else part.capitalize() for part in name.split("_"))
