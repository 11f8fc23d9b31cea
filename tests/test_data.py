"""The datasets themselves (minunet.data): synthetic lesions, items and their augmentation, epochs in DataLoader
workers, subsets, and the real ISIC 2016 images in ../shared/data/isic2016 where that folder exists.
The sources have their own files: test_data_folders.py, test_data_images.py, test_data_npz.py."""
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from minunet.data import TRAIN_IMAGES, TRAIN_MASKS, DataError, make_dataset, synthetic_lesion
from minunet.transforms import IMAGENET_MEAN, IMAGENET_STD, Normalize, pil_to_tensor

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "isic2016"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def unnormalise(image):
    """A normalised float image (3, H, W) back in [0, 1]."""
    return image * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)


# ---------------------------------------------------------------------------------------------------------
# Synthetic lesions

def test_synthetic_lesion_shapes_and_values():
    image, mask = synthetic_lesion(64, torch.Generator().manual_seed(0))
    assert image.shape == (3, 64, 64) and image.dtype == torch.uint8
    assert mask.shape == (1, 64, 64) and mask.dtype == torch.uint8
    assert mask.unique().tolist() == [0, 1]


def test_synthetic_lesions_are_seeded_varied_and_darker_than_skin():
    a = synthetic_lesion(64, torch.Generator().manual_seed(5))
    b = synthetic_lesion(64, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    g = torch.Generator().manual_seed(0)
    areas, darker = [], 0
    for _ in range(30):
        image, mask = synthetic_lesion(64, g)
        m = mask[0].bool()
        gray = image.float().mean(0)  # (64, 64)
        darker += gray[m].mean() < gray[~m].mean() - 20
        areas.append(m.float().mean().item())
    assert darker == 30  # the mask marks the dark lesion
    assert min(areas) > 0.005 and max(areas) < 0.95
    assert max(areas) - min(areas) > 0.2  # varied sizes


def test_make_dataset_synthetic_items():
    ds = make_dataset("synthetic", "val", size=64)
    assert len(ds) == 50 and len(make_dataset("synthetic", "train", size=32, limit=7)) == 7
    image, mask, id_ = ds[3]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert mask.shape == (1, 64, 64) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert id_ == "synthetic_val_0003"
    # not augmented: exactly the stored image, normalised
    assert torch.equal(image, Normalize()(ds.images[3], ds.masks[3])[0])
    assert torch.equal(ds.original_mask(3), ds.masks[3])
    # the same images every time, different ones per split
    assert torch.equal(make_dataset("synthetic", "val", size=64, limit=4).images, ds.images[:4])
    assert not torch.equal(make_dataset("synthetic", "test", size=64, limit=4).images, ds.images[:4])


def test_augmentation_seed_reproduces_every_epoch():
    a = make_dataset("synthetic", "train", size=48, augment=True, seed=3, limit=6)
    b = make_dataset("synthetic", "train", size=48, augment=True, seed=3, limit=6)
    c = make_dataset("synthetic", "train", size=48, augment=True, seed=4, limit=6)
    epoch0 = [a[i][0] for i in range(6)]
    assert all(torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1]) for i in range(6))
    assert all(torch.equal(a[i][0], epoch0[i]) for i in reversed(range(6)))  # any order
    assert any(not torch.equal(c[i][0], epoch0[i]) for i in range(6))
    a.set_epoch(1)
    b.set_epoch(1)
    assert any(not torch.equal(a[i][0], epoch0[i]) for i in range(6))
    assert all(torch.equal(a[i][0], b[i][0]) for i in range(6))
    for i in range(6):
        image, mask, _ = a[i]
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        # the mask still marks the dark lesion after augmentation
        gray = unnormalise(image).mean(0)
        assert gray[mask[0].bool()].mean() < gray[~mask[0].bool()].mean()


def test_unknown_name_or_split():
    with pytest.raises(DataError, match="unknown dataset"):
        make_dataset("isic2017", "train")
    with pytest.raises(DataError, match="unknown split"):
        make_dataset("synthetic", "training")


# ---------------------------------------------------------------------------------------------------------
# The real ISIC 2016 images, where ../shared/data/isic2016 exists

@pytest.fixture(scope="module")
def real():
    if not (REAL / TRAIN_IMAGES).is_dir():
        pytest.skip(f"{REAL} is not here")
    return make_dataset("isic2016", "train", root=REAL), make_dataset("isic2016", "val", root=REAL)


def test_real_counts_and_splits(real):
    train, val = real
    stems = sorted(f[:-4] for f in os.listdir(REAL / TRAIN_IMAGES) if f.endswith(".jpg"))
    assert len(stems) == 749
    assert (len(train), len(val)) == (674, 75)
    assert set(train.ids).isdisjoint(val.ids) and sorted(train.ids + val.ids) == stems
    assert train.images.shape == (674, 3, 128, 128) and train.images.dtype == torch.uint8
    assert val.masks.shape == (75, 1, 128, 128) and val.masks.dtype == torch.uint8


def test_real_masks_and_alignment(real):
    train, val = real
    masks = torch.cat([train.masks, val.masks]).float()  # (749, 1, 128, 128)
    assert masks.unique().tolist() == [0.0, 1.0]
    area = masks.mean((1, 2, 3))  # (749,)
    assert (area > 0).all() and (area < 1).all()
    # lesions are darker than the skin around them: true of ~97% of these images, ~50% if masks were shuffled
    gray = torch.cat([train.images, val.images]).float().mean(1, keepdim=True)  # (749, 1, 128, 128)
    inside = (gray * masks).sum((1, 2, 3)) / masks.sum((1, 2, 3))
    outside = (gray * (1 - masks)).sum((1, 2, 3)) / (1 - masks).sum((1, 2, 3))
    assert (inside < outside).float().mean() > 0.9


def test_real_spot_checks_against_the_files(real):
    train, val = real
    for ds, i in [(train, 0), (train, 300), (train, 673), (val, 0), (val, 74)]:
        id_ = ds.ids[i]
        image = Image.open(REAL / TRAIN_IMAGES / f"{id_}.jpg").resize((128, 128), Image.BILINEAR)
        assert (pil_to_tensor(image).int() - ds.images[i].int()).abs().max() <= 2
        mask_file = Image.open(REAL / TRAIN_MASKS / f"{id_}_Segmentation.png")
        small = pil_to_tensor(mask_file.resize((128, 128), Image.NEAREST), mode="L") > 127
        assert torch.equal(ds.masks[i], small.to(torch.uint8))
        original = ds.original_mask(i)
        assert original.shape == (1, mask_file.height, mask_file.width) == (1, 192, 256)
        assert torch.equal(original, (pil_to_tensor(mask_file, mode="L") > 127).to(torch.uint8))


def test_real_items_decode_nothing(real, monkeypatch):
    _, val = real

    def no_decoding(*args, **kwargs):
        raise AssertionError("an item opened a file")

    monkeypatch.setattr(Image, "open", no_decoding)
    for i in range(len(val)):
        image, mask, id_ = val[i]
        assert image.shape == (3, 128, 128) and mask.shape == (1, 128, 128) and id_ == val.ids[i]
