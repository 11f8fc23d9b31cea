"""Segment image files: <stem>_Segmentation.png (0/255) at each image's own size, and optional overlays.

predict never writes two results to one name and never replaces a segmentation it did not just write
unless asked (overwrite=True): the output folder may hold a user's ground truth.
"""
import os
from dataclasses import dataclass

import torch

from .data import IMAGE_EXTENSIONS, read_image
from .device import Runtime
from .errors import DataError, SettingError, one_line
from .inference import (MASK_SUFFIX, OVERLAY_SUFFIX, Inference, mask_to_image, overlay_image, prepare_for_inference,
                        shown_at)


def input_images(source):
    """The image files predict reads from `source`: the file itself, or a folder's .jpg, .jpeg and .png files
    (sorted) that are not segmentations or overlays it wrote; DataError when there are none."""
    if os.path.isdir(source):
        paths = sorted(os.path.join(source, f) for f in os.listdir(source)
                       if f.lower().endswith(IMAGE_EXTENSIONS) and not f.endswith((MASK_SUFFIX, OVERLAY_SUFFIX)))
    elif os.path.isfile(source):
        paths = [source]
    else:
        raise DataError(f"--input {source}: no such file or folder")
    if not paths:
        raise DataError(f"--input {source} holds no .jpg, .jpeg or .png image")
    return paths


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


@dataclass(frozen=True)
class Output:
    """What predict writes and returns besides each <stem>_Segmentation.png: overlay, also <stem>_overlay.png;
    overwrite, replace such files already in the output folder; pictures, return each image and its mask at the
    working size (for a report)."""
    overlay: bool = False
    overwrite: bool = False
    pictures: bool = False


@torch.no_grad()
def predict(model, paths, out_dir, inference=None, runtime=None, output=None):
    """Segment each image file in `paths`: write <stem>_Segmentation.png (0/255) at the image's own size.

    inference: the working size, normalisation, flips, threshold and post-processing (default Inference(): the
    recipe's; usually Inference.of_checkpoint). runtime: device, precision, images per forward pass, and
    compile (a compiled copy of the model, see prepare_for_inference: worth its start-up cost for hundreds of
    images). output: overlays, overwriting, pictures (see Output). An unreadable image is skipped.
    Returns a dict: "written" (a count), "skipped" (a (path, reason) per unreadable image), "rows" (per image
    written: its "id" (the stem), "path" and "predicted_area", the fraction of its pixels predicted lesion),
    and with output.pictures "pictures" ({id: (image (3, S, S) uint8, None, mask (S, S) bool)}).
    """
    inference, runtime, output = inference or Inference(), runtime or Runtime(), output or Output()
    names = output_names(paths, output.overlay)
    if not output.overwrite and os.path.isdir(out_dir):
        refuse_to_replace(out_dir, names)
    device, amp_dtype = runtime.choose()
    model = prepare_for_inference(model, device, runtime.compile)
    os.makedirs(out_dir, exist_ok=True)
    result = dict(written=0, skipped=[], rows=[], **({"pictures": {}} if output.pictures else {}))
    batch = max(1, min(runtime.batch_size, len(paths)))
    for start in range(0, len(paths), batch):
        images, kept = [], []  # each (3, H, W) uint8, at its own size
        for path in paths[start:start + batch]:
            try:
                images.append(read_image(path))  # (3, H, W) uint8, as viewers show it
            except DataError as err:
                result["skipped"].append((path, str(err)))
                continue
            kept.append(path)
        if not images:
            continue
        small, x = (torch.stack(t) for t in zip(*map(inference.prepare, images)))  # (B, 3, S, S) uint8, float
        if runtime.compile:  # a compiled model compiles once per shape: pad a short batch by repeating its first
            x = torch.cat([x, x[:1].expand(batch - len(x), -1, -1, -1)])  # (batch, 3, S, S)
        try:
            probs = inference.probabilities(model, x.to(device), amp_dtype, channels_last=not runtime.compile)
        except torch._dynamo.exc.BackendCompilerFailed as err:  # no C++ compiler, for example
            raise SettingError(f"torch.compile failed ({one_line(str(err).splitlines()[0])}); predict without "
                               f"compiling") from None
        for image, path, prob, shown in zip(images, kept, probs, small):  # prob: (1, S, S)
            mask = inference.masks(prob[None], image.shape[1:])[0]  # (1, H, W) bool, at the image's own size
            files = [os.path.join(out_dir, name) for name in names[path]]
            mask_to_image(mask[0].cpu()).save(files[0])
            if output.overlay:
                overlay_image(image, mask[0].cpu()).save(files[1])
            stem = os.path.splitext(os.path.basename(path))[0]
            result["rows"].append(dict(id=stem, path=path, predicted_area=mask.float().mean().item()))
            if output.pictures:
                result["pictures"][stem] = (shown, None, shown_at(mask, shown.shape[1:]).cpu())
            result["written"] += 1
    return result
