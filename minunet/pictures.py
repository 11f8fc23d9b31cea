"""Pictures of masks: a mask as a black and white image, a mask tinted over its image (predict's overlays), the
report's three-colour overlay of a prediction against the truth, and a scored mask shown at the working size;
for K > 2 classes, a label map as a palette PNG and an overlay of one colour per class with a legend."""
import torch
import torch.nn.functional as F
from PIL import ImageDraw

from .transforms import tensor_to_pil

COLOURS = {  # overlay tints, RGB
    "lesion found": (40, 190, 40), "lesion missed": (40, 90, 255), "false alarm": (255, 40, 40),
    "predicted lesion": (255, 200, 0),
}


CLASS_COLOURS = ((0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
                 (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128))


def class_colour(c):
    """The RGB colour of class c (background black; CLASS_COLOURS, then repeated)."""
    return CLASS_COLOURS[0] if c == 0 else CLASS_COLOURS[1 + (c - 1) % (len(CLASS_COLOURS) - 1)]


def label_map_image(labels, k):
    """A label map (H, W) of class indices as a PIL palette image ("P"): its pixel values are the indices
    0..K-1, and a viewer shows each class in its colour."""
    img = tensor_to_pil(labels[None].to(torch.uint8).cpu()).convert("P")  # mode P keeps the values as indices
    img.putpalette([v for c in range(k) for v in class_colour(c)] + [0, 0, 0] * (256 - k))
    return img


def class_overlay(image, labels, names, alpha=0.45):
    """The image (3, H, W) uint8 with each foreground class of labels (H, W) tinted in its colour, and a
    legend of the class names, as a PIL RGB image."""
    out = image
    for c in range(1, len(names)):
        out = tint(out, labels == c, class_colour(c), alpha)
    img = tensor_to_pil(out)
    draw = ImageDraw.Draw(img)
    for c, name in enumerate(names[1:], start=1):
        y = 4 + 14 * (c - 1)
        draw.rectangle([4, y, 14, y + 10], fill=class_colour(c), outline=(255, 255, 255))
        draw.text((18, y - 1), name, fill=(255, 255, 255))
    return img


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
