"""Segment image files: <stem>_Segmentation.png (0/255) at each image's own size, and optional overlays.

predict never writes two results to one name and never replaces a segmentation it did not just write
unless asked (overwrite=True): the output folder may hold a user's ground truth.
"""
import io
import os
import unicodedata
import warnings
from dataclasses import dataclass

import torch
from PIL import Image

from ..atomic import write_together
from ..data import IMAGE_EXTENSIONS, read_image
from ..data.images import holds_colour
from ..device import Runtime
from ..errors import DataError, SettingError, one_line, out_of_memory
from ..inference import MASK_SUFFIX, OVERLAY_SUFFIX, Inference, prepare_for_inference
from ..pictures import class_overlay, label_map_image, mask_to_image, overlay_image, shown_at


def input_images(source):
    """(paths, passed over) of what predict reads from `source`: the file itself, or a folder's .jpg, .jpeg
    and .png files (sorted), and (path, reason) for each other file of the folder: an image named like the
    segmentation or overlay predict writes (<stem>_Segmentation.png, <stem>_overlay.png) whose <stem> image is
    not there (beside its image, it is predict's own result and passed over without a word). Files of other
    kinds are not inputs. DataError when there is no image to read."""
    passed_over = []
    if os.path.isdir(source):
        paths, names = [], sorted(os.listdir(source))
        stems = {os.path.splitext(name)[0] for name in names if name.lower().endswith(IMAGE_EXTENSIONS)}
        for name in names:
            path = os.path.join(source, name)
            if name.endswith((MASK_SUFFIX, OVERLAY_SUFFIX)) and name.rsplit("_", 1)[0] in stems:
                continue  # predict's own result, beside the image it segmented
            if name.endswith((MASK_SUFFIX, OVERLAY_SUFFIX)):
                passed_over.append((path, f"{path}: named like a file predict writes (*{MASK_SUFFIX}, "
                                          f"*{OVERLAY_SUFFIX}), so not read as an input; rename it to segment it"))
            elif name.lower().endswith(IMAGE_EXTENSIONS):  # other files (notes, sub-folders) are not inputs
                paths.append(path)
    elif os.path.isfile(source):
        paths = [source]
    else:
        raise DataError(f"--input {source}: no such file or folder")
    if not paths:
        raise DataError(f"--input {source} holds no .jpg, .jpeg or .png image" + (
            f" to segment ({len(passed_over)} other file(s): {passed_over[0][1]})" if passed_over else ""))
    return paths, passed_over


def output_names(paths, overlay):
    """{input path: [the files predict writes for it]}; DataError when two inputs would write one name (also
    names that differ only in their Unicode form, composed or not, which macOS stores as one file)."""
    names, owner = {}, {}
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        names[path] = [stem + MASK_SUFFIX] + ([stem + OVERLAY_SUFFIX] if overlay else [])
        for name in names[path]:
            key = unicodedata.normalize("NFC", name)
            if key in owner:
                raise DataError(f"{owner[key]} and {path} would both be written to {name}: rename one of "
                                f"them or segment them into separate --output folders")
            owner[key] = path
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
    """Segment each image file in `paths`: write <stem>_Segmentation.png (0/255) at the image's own size; for
    K > 2 classes (inference.spec) a palette PNG whose values are the class indices 0..K-1, and overlays of one
    colour per class with a legend.

    inference: the working size, normalisation, flips, threshold and post-processing (default Inference(): the
    recipe's; usually Inference.of_checkpoint). runtime: device, precision, images per forward pass, and
    compile (a compiled copy of the model, see prepare_for_inference: worth its start-up cost for hundreds of
    images). output: overlays, overwriting, pictures (see Output). An unreadable image is skipped, and so is
    one that does not fit in memory. Returns a dict: "written" (a count), "skipped" (a (path, reason) per
    unreadable image), "too_large" (likewise, per image that did not fit in memory), "rows" (per image
    written: its "id" (the stem), "path" and "predicted_area", the fraction of its pixels predicted lesion),
    "gray" (how many colour images were converted to the gray a model of one channel reads), and with
    output.pictures "pictures" ({id: (image (3, S, S) uint8, None, mask (S, S) bool)}).
    """
    inference, runtime, output = inference or Inference(), runtime or Runtime(), output or Output()
    names = output_names(paths, output.overlay)
    if not output.overwrite and os.path.isdir(out_dir):
        refuse_to_replace(out_dir, names)
    device, amp_dtype = runtime.choose()
    model = prepare_for_inference(model, device, runtime.compile)
    os.makedirs(out_dir, exist_ok=True)
    result = dict(written=0, skipped=[], too_large=[], rows=[], gray=0, **({"pictures": {}} if output.pictures else {}))
    batch = max(1, min(runtime.batch_size, len(paths)))
    for start in range(0, len(paths), batch):
        loaded = []  # (path, image (3, H, W) uint8 at its own size, (3, S, S) uint8, (3, S, S) float)
        for path in paths[start:start + batch]:
            try:
                loaded.append((path, *load(path, inference)))
            except DataError as err:
                result["skipped"].append((path, str(err)))
            except (MemoryError, RuntimeError) as err:
                result["too_large"].append((path, too_large(err, path)))
        if not loaded:
            continue
        x = torch.stack([item[3] for item in loaded])  # (B, 3, S, S)
        if runtime.compile:  # a compiled model compiles once per shape: pad a short batch by repeating its first
            x = torch.cat([x, x[:1].expand(batch - len(x), -1, -1, -1)])  # (batch, 3, S, S)
        try:
            probs = inference.probabilities(model, x.to(device), amp_dtype, channels_last=not runtime.compile)
        except torch._dynamo.exc.BackendCompilerFailed as err:  # no C++ compiler, for example
            raise SettingError(f"torch.compile failed ({one_line(str(err).splitlines()[0])}); predict without "
                               f"compiling") from None
        for (path, image, shown, _), prob in zip(loaded, probs):  # prob: (1, S, S)
            try:
                mask = inference.masks(prob[None], image.shape[1:])[0]  # (1, H, W) at the image's own size
                files = [os.path.join(out_dir, name) for name in names[path]]
                write_mask(image, mask[0].cpu(), files, inference.spec.classes)
            except (MemoryError, RuntimeError) as err:
                result["too_large"].append((path, too_large(err, path, image.shape[1:])))
                continue
            stem = os.path.splitext(os.path.basename(path))[0]
            result["rows"].append(dict(id=stem, path=path, predicted_area=(mask > 0).float().mean().item()))
            if output.pictures:
                result["pictures"][stem] = (shown.expand(3, -1, -1), None, shown_at(mask, shown.shape[1:]).cpu())
            result["written"] += 1
            result["gray"] += inference.spec.channels == 1 and holds_colour(image)  # converted to the model's gray
    return result


def write_mask(image, mask, files, classes):
    """Write the mask (H, W) of the image (3, H, W) uint8 to files[0] (0/255, or for K > 2 classes a palette
    PNG of the class indices) and, when files has a second name, its overlay there: both whole or neither."""
    if len(classes) == 2:
        pictures = [mask_to_image(mask), overlay_image(image, mask) if len(files) > 1 else None]
    else:
        pictures = [label_map_image(mask, len(classes)), class_overlay(image, mask, classes) if len(files) > 1
                    else None]
    write_together({path: png_bytes(picture) for path, picture in zip(files, pictures)})


def png_bytes(picture):
    """A PIL image as the bytes of a PNG file."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def load(path, inference):
    """An image file as (image (3, H, W) uint8 at its own size, (3, S, S) uint8 at the working size, the
    model's input (3, S, S) float); DataError when it cannot be read."""
    with warnings.catch_warnings():  # a very large image is segmented, or skipped if it does not fit in memory
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = read_image(path)  # (3, H, W) uint8, as viewers show it
    return (image, *inference.prepare(image))


def too_large(err, path, size=None):
    """The reason an image is skipped when `err` is running out of memory on it; any other error is raised."""
    if not out_of_memory(err):
        raise err
    pixels = f"its {size[1]}x{size[0]} pixels" if size is not None else "it"
    return (f"{path}: {pixels} did not fit in memory: shrink it (e.g. to 2000 pixels on its longest side) and "
            f"segment it again")
