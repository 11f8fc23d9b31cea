"""Pictures of masks: a mask as a black and white image, a mask tinted over its image (predict --overlay), the
report's three-colour overlay of a prediction against the truth, and a scored mask shown at the working size."""
import torch
import torch.nn.functional as F

from .transforms import tensor_to_pil

COLOURS = {  # overlay tints, RGB
    "lesion found": (40, 190, 40), "lesion missed": (40, 90, 255), "false alarm": (255, 40, 40),
    "predicted lesion": (255, 200, 0),
}


def shown_at(mask, size):
    """A scored mask (1, H, W) (bool, or class indices) as a picture at `size` (h, w): resized by nearest
    neighbour if it differs, in its own dtype."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask[0]
    return F.interpolate(mask[None].float(), size=tuple(size), mode="nearest")[0, 0].to(mask.dtype)  # (h, w)


def mask_to_image(mask):
    """A (H, W) bool tensor as a PIL image of mode L with values 0 and 255."""
    return tensor_to_pil(mask[None].to(torch.uint8) * 255)


def tint(image, mask, colour, alpha):
    """The image (3, H, W) uint8 with the pixels of mask (H, W) bool blended towards `colour` (RGB) by alpha."""
    paint = torch.tensor(colour, dtype=torch.float32)[:, None, None]  # (3, 1, 1)
    out = torch.where(mask, (1 - alpha) * image.float() + alpha * paint, image.float())  # (3, H, W)
    return out.round().to(torch.uint8)


def overlay_image(image, mask, colour=(255, 40, 40), alpha=0.45):
    """The image (3, H, W) uint8 with the mask (H, W) bool tinted in `colour`, as a PIL RGB image."""
    return tensor_to_pil(tint(image, mask, colour, alpha))


def overlay(image, truth, prediction, alpha=0.5):
    """The image (3, h, w) uint8 with the prediction tinted over it, as (3, h, w) uint8.

    With a truth mask: lesion found green, lesion missed blue, false alarm red (COLOURS); without: the
    predicted lesion yellow. truth, prediction: (h, w) bool (or anything reshaping to it, in {0, 1}).
    """
    h, w = image.shape[1:]
    pred = prediction.reshape(h, w).bool()  # (h, w)
    if truth is None:
        parts = {"predicted lesion": pred}
    else:
        true = truth.reshape(h, w).bool()  # (h, w)
        parts = {"lesion found": true & pred, "lesion missed": true & ~pred, "false alarm": ~true & pred}
    out = image  # (3, h, w) uint8; the parts do not overlap, so each pixel is tinted once at most
    for name, mask in parts.items():
        out = tint(out, mask, COLOURS[name], alpha)
    return out
