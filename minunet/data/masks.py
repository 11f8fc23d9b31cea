"""What the masks of one split hold, said before they are used: a note line for each way they were read other
than 0/255, or a one-line refusal (DataError) where no reading would be right.

  0 and 1, or 0 and one other value below 128 (a label map of    that value is lesion        note
    two classes: 0/2, 0/3)
  several values below 128 across the split (0/1/2: classes)     not a lesion mask           refused (classes=K)
  with classes=K > 2: class indices 0..K-1                       kept as they are            larger refused
  grey levels (anti-aliased edges)                               binarised at > 127          note
  empty masks (no lesion pixel)                                  images without lesion       note
  every mask of the split empty                                  nothing to learn or score   refused
  with classes=K > 2: every label map of the split class 0       nothing to learn or score   refused
Each mask's kind comes from minunet.data.images.mask_kind; here they are counted over a split.
"""
import os

from ..errors import DataError, Fix
from .images import label_values

SHOWN_VALUES = 8  # a longer list of values is cut: 0, 1, 2, ..., 100 (101 values)


def value_list(values):
    """'0, 1, 2', or for many values '0, 1, 2, 3, 4, 5, 6, ..., 100 (101 values)'."""
    if len(values) <= SHOWN_VALUES:
        return ", ".join(str(v) for v in values)
    return f"{', '.join(str(v) for v in values[:SHOWN_VALUES - 1])}, ..., {values[-1]} ({len(values)} values)"


def check_labels(kinds, masks, own_classes=True):
    """Raise DataError when the label maps of a split, [(kind, file name or None)], hold more than one value
    besides 0 (classes, not a lesion); `masks` says where they are ("masks in DIR"). own_classes: the fix is
    classes=K (a folder); False where the data name their classes (an npz of two classes)."""
    values = sorted({v for kind, _ in kinds for v in label_values(kind)})
    if len(values) < 2:
        return
    example = next(((kind, name) for kind, name in kinds if set(label_values(kind)) - {values[0]}))
    shown = f" ({example[1]}: {value_list([0] + label_values(example[0]))})" if example[1] else ""
    named = "" if own_classes else "; medsegbench names two classes for it"
    raise DataError(f"{masks} hold the values {value_list([0] + values)}{shown}: a label map with "
                    f"{len(values) + 1} classes, not a lesion mask{named}",
                    otherwise="save the lesion as 255 and all else as 0",
                    fix=[Fix(classes=max(values) + 1, note=f"to read them as class indices 0..{max(values)}")]
                    if own_classes else [])


def mask_notes(kinds, split, masks):
    """One note per way of reading masks other than 0/255, from [(kind, file name)] of a split (after
    check_labels: at most one label value)."""
    notes = []
    labelled = [(label_values(kind)[0], name) for kind, name in kinds if label_values(kind)]
    grey = [name for kind, name in kinds if kind == "grey"]
    if labelled:
        v = labelled[0][0]
        if len(labelled) == sum(kind != "empty" for kind, _ in kinds):
            notes.append(f"{masks} hold 0 and {v}, not 0 and 255: read {v} as lesion")
        else:
            notes.append(f"{len(labelled)} of the {len(kinds)} {split} {masks} hold 0 and {v}, not 0 and 255 "
                         f"(first: {labelled[0][1]}): read {v} as lesion")
    if grey:
        notes.append(f"{len(grey)} of the {len(kinds)} {split} {masks} are not binary (first: {grey[0]}): "
                     f"binarised at > 127")
    return notes


def empty_masks(empty, resized, count, split, masks, size=None):
    """A note on the empty masks of a split (None when there are none); DataError when every one is.

    empty: the names of the masks with no lesion pixel; resized: those of them whose file has a lesion that
    resizing to `size` (H, W) lost (too small to cover a pixel there); count: the split's masks.
    """
    if not empty:
        return None
    at = f" at {size[0]}x{size[1]}" if resized and size else ""
    if len(empty) == count:
        larger = ", or train at a larger size" if resized else ""
        raise DataError(f"all {count} {split} {masks} are empty (no lesion pixel{at}): there is no lesion to "
                        f"learn or score; draw each lesion in its mask as 255 on 0{larger}")
    lost = f"; {len(resized)} of them only{at}, their lesions smaller than a pixel there" if resized else ""
    return f"{len(empty)} of the {count} {split} {masks} are empty (first: {empty[0]}): read as images " \
           f"without lesion{lost}"


def split_notes(kinds, split, mask_dir, size=None, resized=()):
    """check_labels, mask_notes and empty_masks of the masks of one split of a folder, [(kind, path)];
    resized: the paths of masks that only resizing to `size` left empty (the train split's)."""
    named = [(kind, os.path.basename(path)) for kind, path in kinds]
    masks = f"masks in {mask_dir}"
    check_labels(named, masks)
    empty = [name for kind, name in named if kind == "empty"]
    resized = [os.path.basename(path) for path in resized]
    empty_note = empty_masks(sorted(empty + resized), resized, len(kinds), split, masks, size)
    return mask_notes(named, split, masks) + ([empty_note] if empty_note else [])


def background_only(labels, k, count, split, masks):
    """Raise DataError when the label maps of a split, `labels` (class indices of its `count` masks, any shape),
    hold class 0 alone: no class 1..k-1 to learn or score, as empty_masks refuses a split of empty lesion masks."""
    if labels.numel() and not labels.any():
        raise DataError(f"all {count} {split} {masks} hold only class 0, the background: there is no class to learn "
                        f"or score; save each pixel's class index, 1 to {k - 1} for the classes to find")


def check_class_indices(labels, k, holder):
    """Raise DataError unless every value of the label maps `labels` (any shape, integers) is a class index
    below k. `holder` names where they are, with its verb: "masks in DIR hold", or "mask FILE holds"."""
    largest = int(labels.max()) if labels.numel() else 0
    if largest > k - 1 or (labels.numel() and int(labels.min()) < 0):
        values = sorted(set(labels.unique().tolist()))
        raise DataError(f"{holder} the values {value_list(values)}, and {k} classes are class indices "
                        f"0..{k - 1}", otherwise="save each pixel's class index (0 for background)",
                        fix=Fix(classes=largest + 1, note="if there are that many"))
