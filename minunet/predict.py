"""Segment image files: <stem>_Segmentation.png (0/255) at each image's own size, and optional overlays.

predict never writes two results to one name and never replaces a segmentation it did not just write
unless asked (overwrite=True): the output folder may hold a user's ground truth.
"""
import os

import torch

from .data import read_image
from .device import choose_device
from .errors import DataError, SettingError, one_line
from .inference import (MASK_SUFFIX, OVERLAY_SUFFIX, mask_to_image, overlay_image, prepare_for_inference,
                        probabilities, resize_probabilities)
from .postprocess import clean_mask
from .transforms import IMAGENET_MEAN, IMAGENET_STD, Normalize, Resize


def output_names(paths, overlay):
    """{input path: [the files predict writes for it]}; DataError when two inputs would write one name."""
    names, owner = {}, {}
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        names[path] = [stem + MASK_SUFFIX] + ([stem + OVERLAY_SUFFIX] if overlay else [])
        for name in names[path]:
            if name in owner:
                raise DataError(f"{owner[name]} and {path} would both be written to {name}: rename one of "
                                f"them or segment them into separate --output folders")
            owner[name] = path
    return names


def refuse_to_replace(out_dir, names):
    """DataError when out_dir already holds a file predict would write (pass overwrite=True to replace)."""
    taken = sorted(n for files in names.values() for n in files if os.path.lexists(os.path.join(out_dir, n)))
    if taken:
        more = f" and {len(taken) - 1} more already exist" if len(taken) > 1 else " already exists"
        raise DataError(f"{os.path.join(out_dir, taken[0])}{more}: minunet predict does not "
                        f"replace files it did not write; pass another --output, or --overwrite to replace them")


@torch.no_grad()
def predict(model, paths, out_dir, size, device="auto", precision="auto", overlay=False, mean=IMAGENET_MEAN,
            std=IMAGENET_STD, batch_size=16, compile=False, threshold=0.5, tta=False, postprocess=False,
            overwrite=False, warn=print, collect=None):
    """Segment each image file in `paths`; write <stem>_Segmentation.png (0/255) at the image's own size.

    Images go through the model batch_size at a time; a pixel is lesion where its probability is above
    `threshold` (tta: averaged over flips, see minunet.inference.probabilities; postprocess: the largest
    region kept, its holes filled, see minunet.postprocess.clean_mask). overlay=True also writes
    <stem>_overlay.png. compile=True runs a compiled copy of the model (see prepare_for_inference): worth its
    start-up cost for hundreds of images. An unreadable image is skipped with a call to `warn`. collect: a
    list to which (stem, image (3, S, S) uint8, mask (S, S) bool, predicted area fraction) is appended per
    image, at the working size (for a report). Returns (number written, list of skipped paths).
    """
    names = output_names(paths, overlay)
    if not overwrite and os.path.isdir(out_dir):
        refuse_to_replace(out_dir, names)
    device, amp_dtype = choose_device(device, precision)
    model = prepare_for_inference(model, device, compile)
    resize, normalize = Resize(size), Normalize(mean, std)
    os.makedirs(out_dir, exist_ok=True)
    written, skipped = 0, []
    batch = max(1, min(batch_size, len(paths)))
    for start in range(0, len(paths), batch):
        images, kept = [], []  # each (3, H, W) uint8, at its own size
        for path in paths[start:start + batch]:
            try:
                images.append(read_image(path))  # (3, H, W) uint8, as viewers show it
            except DataError as err:
                warn(f"skipped: {err}")
                skipped.append(path)
                continue
            kept.append(path)
        if not images:
            continue
        small = torch.stack([resize(image, torch.zeros(1, *image.shape[1:]))[0] for image in images])  # (B, 3, S, S)
        x = torch.stack([normalize(image, None)[0] for image in small])  # (B, 3, S, S) float
        if compile:  # a compiled model compiles once per shape: pad a short batch by repeating its first image
            x = torch.cat([x, x[:1].expand(batch - len(x), -1, -1, -1)])  # (batch, 3, S, S)
        try:
            probs = probabilities(model, x.to(device), amp_dtype, tta, channels_last=not compile)  # (B, 1, S, S)
        except torch._dynamo.exc.BackendCompilerFailed as err:  # no C++ compiler, for example
            raise SettingError(f"torch.compile failed ({one_line(str(err).splitlines()[0])}); predict without "
                               f"compiling") from None
        for image, path, prob, shown in zip(images, kept, probs, small):  # prob: (1, S, S)
            mask = resize_probabilities(prob[None], image.shape[1:]) > threshold  # (1, 1, H, W) bool
            mask = (clean_mask(mask) if postprocess else mask)[0, 0].cpu()  # (H, W) bool
            files = [os.path.join(out_dir, name) for name in names[path]]
            mask_to_image(mask).save(files[0])
            if overlay:
                overlay_image(image, mask).save(files[1])
            if collect is not None:
                small_mask = prob[None] > threshold  # (1, 1, S, S) bool
                small_mask = (clean_mask(small_mask) if postprocess else small_mask)[0, 0].cpu()  # (S, S)
                collect.append((os.path.splitext(os.path.basename(path))[0], shown, small_mask,
                                mask.float().mean().item()))
            written += 1
    return written, skipped
