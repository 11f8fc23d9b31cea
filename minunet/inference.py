"""From a trained model to masks, one way for every caller: `Inference` (the working size and normalisation,
test-time flips, the threshold, post-processing) turns a model's output into the masks that validation,
evaluate, predict, the figure of cases and the report all use. Also here: the forward pass, a faster model for
inference (BatchNorm folded, torch.compile).

How a setting travels to the pixel: Inference.of_checkpoint(checkpoint, threshold=0.4, tta=True) (the command
line builds it from its flags; a setting not given keeps the checkpoint's value, or the recipe's default);
evaluate() and predict() call its `probabilities` (one pass, or four with flips) and its `masks` (resized to the
ground truth or the image, above the threshold, post-processed).

Several classes (a model of K > 2 output channels): the probabilities are the softmax over the classes (with
TTA, the mean of the flips' softmax), resized bilinearly like a lesion's, and a pixel's class is their argmax;
the threshold and post-processing are binary-only (Inference refuses them for K > 2).
"""
import copy
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .data.catalog import DataSpec
from .errors import Fix, SettingError
from .losses import activate
from .data.folders import MASK_SUFFIX  # noqa: F401  (<stem>_Segmentation.png, the ISIC name of a mask file)
from .data.images import as_channels
from .data.modality import ORIENTATIONS
from .postprocess import clean_mask
from .recipe import Recipe
from .transforms import IMAGENET_MEAN, IMAGENET_STD, Normalize, Resize

OVERLAY_SUFFIX = "_overlay.png"  # the overlays predict writes: <stem>_overlay.png


@torch.no_grad()
def logits_of(model, images, amp_dtype=None, channels_last=True):
    """The model's float32 logits (B, 1, H, W) (K > 2 classes: (B, K, H, W)) for normalised images (B, C, H, W)."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    with torch.autocast(images.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        logits = model(images.contiguous(memory_format=layout))  # (B, 1 or K, H, W)
    return logits.float()


FLIPS = ORIENTATIONS["any"]["tta"]  # identity, horizontal, vertical, both: the test-time views of images with no up


@torch.no_grad()
def probabilities(model, images, amp_dtype=None, tta=Recipe.tta, channels_last=True, logits=None,
                  flips=FLIPS):
    """Lesion probabilities (B, 1, H, W) of normalised images (B, C, H, W); for a model of K > 2 classes each
    class's, (B, K, H, W), the softmax (minunet.losses.activate).

    tta=True (the recipe's default): the mean probability over the views `flips` (each prediction flipped back
    first): by default the image and its horizontal, vertical and double flips, four forward passes for one
    steadier answer; for images that have an up, the image and its horizontal flip (minunet.data.modality). logits:
    the model's logits for `images` when the caller already has them (saves the first forward pass).
    """
    if logits is None:
        logits = logits_of(model, images, amp_dtype, channels_last)  # (B, 1 or K, H, W)
    probs = activate(logits)  # (B, 1 or K, H, W)
    if not tta:
        return probs
    for dims in flips[1:]:
        flipped = logits_of(model, images.flip(dims), amp_dtype, channels_last)  # (B, 1 or K, H, W), flipped
        probs = probs + activate(flipped).flip(dims)  # flipped back
    return probs / len(flips)


def resize_probabilities(probs, size):
    """Probabilities (B, 1 or K, h, w) resized bilinearly to size (H, W) (returned as they are when equal)."""
    if tuple(probs.shape[-2:]) == tuple(size):
        return probs
    return F.interpolate(probs, size=tuple(size), mode="bilinear", align_corners=False)


@dataclass(frozen=True)
class Inference:
    """How a model's output becomes masks, and what the model expects of an image file.

    size, mean, std: the working size ((H, W), or one side of a square) and the normalisation the model was
    trained with. tta: average the probabilities over flips (`probabilities`), those that `orientation` ("any"
    or "upright", the run's: minunet.data.modality) allows. threshold: a pixel is lesion
    where its probability is above it. postprocess: keep each mask's largest region and fill its holes
    (minunet.postprocess.clean_mask). The defaults are the recipe's (minunet.recipe). spec: the channels the
    model reads and its classes (minunet.data.catalog.DataSpec); for K > 2 classes a pixel's class is the argmax,
    and threshold and postprocess do not apply.
    """
    size: object = Recipe.size
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    threshold: float = 0.5
    tta: bool = Recipe.tta
    postprocess: bool = False
    spec: DataSpec = DataSpec()
    orientation: str = "any"

    @classmethod
    def of_checkpoint(cls, checkpoint, **overrides):
        """The settings of a Checkpoint (its size, normalisation, threshold, channels and classes; a threshold of
        0.5 where it records none, as in minunet 0.1.0), with every override that is not None (e.g. tta,
        threshold). SettingError for a threshold or post-processing asked of a checkpoint of K > 2 classes."""
        spec = checkpoint.spec
        asked = [k for k in ("threshold", "postprocess") if overrides.get(k)]
        if len(spec.classes) > 2 and asked:
            raise SettingError(f"a threshold and post-processing are for two classes: this checkpoint has "
                               f"{len(spec.classes)}, and each pixel takes its most probable class",
                               fix=Fix(**dict.fromkeys(asked)))
        threshold = cls.threshold if checkpoint.threshold is None else checkpoint.threshold
        settings = dict(size=checkpoint.size, mean=checkpoint.mean, std=checkpoint.std, threshold=threshold, spec=spec,
                        orientation=checkpoint.recipe.orientation)
        return cls(**{**settings, **{k: v for k, v in overrides.items() if v is not None}})

    def prepare(self, image):
        """An image (3 or 1, H, W) uint8 at its own size as the model's input, in the model's channels (colour
        to gray by its luma, gray repeated into colour): (C, S, S) uint8 at the working size, and (C, S, S)
        float normalised."""
        image = as_channels(image[None], self.spec.channels)[0]  # (C, H, W)
        small = Resize(self.size)(image, torch.zeros(1, *image.shape[1:]))[0]  # (C, S, S) uint8
        return small, Normalize(self.mean, self.std)(small, None)[0]

    def probabilities(self, model, images, amp_dtype=None, logits=None, channels_last=True):
        """The lesion probabilities (B, 1, S, S) (each class's, (B, K, S, S), for K > 2) of normalised images
        (B, C, S, S), with flips if tta."""
        return probabilities(model, images, amp_dtype, self.tta, channels_last, logits,
                             ORIENTATIONS[self.orientation]["tta"])

    def masks(self, probs, size=None):
        """The masks (B, 1, H, W) bool of probabilities (B, 1, h, w): resized bilinearly to `size` (H, W)
        when given, lesion above the threshold, then post-processed if asked. For K > 2 classes, probabilities
        (B, K, h, w) give label maps (B, 1, H, W) uint8 of each pixel's most probable class. The one place in
        minunet where a probability becomes a decision."""
        probs = probs if size is None else resize_probabilities(probs, size)  # (B, 1 or K, H, W)
        if not self.thresholded:
            return probs.argmax(1, keepdim=True).to(torch.uint8)  # (B, 1, H, W) class indices
        masks = probs > self.threshold  # (B, 1, H, W) bool
        return clean_mask(masks) if self.postprocess else masks

    @property
    def thresholded(self):
        """Whether a threshold decides each pixel: for two classes (one logit, the lesion's probability); for
        K > 2 each pixel takes its most probable class, the argmax, and no threshold applies."""
        return len(self.spec.classes) == 2  # the mask decision, the one place the number of classes makes it


def fold_batchnorm(model):
    """Fold each BatchNorm2d into the Conv2d just before it (for inference; the model must be in eval mode).

    In minunet's models every BatchNorm2d directly follows its Conv2d among its parent's children, so
    conv -> bn becomes one conv with w' = w * g / s and b' = (b - mean) * g / s + beta, s = sqrt(var + eps),
    and the BatchNorm2d becomes an Identity. The outputs stay the same to float rounding.
    """
    assert not model.training, "fold_batchnorm is for eval mode"
    for parent in model.modules():
        children = list(parent.named_children())
        for (_, conv), (bn_name, bn) in zip(children, children[1:]):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
                bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                conv.weight = nn.Parameter((conv.weight * scale[:, None, None, None]).detach())
                conv.bias = nn.Parameter(((bias - bn.running_mean) * scale + bn.bias).detach())
                setattr(parent, bn_name, nn.Identity())
    return model


def prepare_for_inference(model, device, compile=False):
    """A copy of `model` in its fastest form for predicting: eval mode, BatchNorm folded, channels_last.

    compile=True compiles the copy with torch.compile instead (inductor, the weights frozen into the graph;
    contiguous tensors suit it better than channels_last): its first call takes 30 to 60 s on 2 CPU cores
    (seconds once inductor's cache holds the graph); after that it runs x1.0 to x1.15 the eager channels_last
    copy, x1.2 to x1.7 a plain fp32 model (bench/RESULTS.md). It needs a C++ compiler on the CPU.
    """
    model = fold_batchnorm(copy.deepcopy(model).eval()).to(device)
    if compile:
        return torch.compile(model, dynamic=False, options={"freezing": True})
    return model.to(memory_format=torch.channels_last)
