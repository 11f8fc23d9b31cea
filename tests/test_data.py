"""The datasets themselves (minunet.data): synthetic lesions, items and their augmentation, epochs in DataLoader
workers, subsets, and the real ISIC 2016 images in ../shared/data/isic2016 where that folder exists.
The sources have their own files: test_data_folders.py, test_data_images.py, test_data_npz.py."""
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from minunet.data import TRAIN_IMAGES, TRAIN_MASKS, DataError, LesionDataset, make_dataset, synthetic_lesion
from minunet.transforms import IMAGENET_MEAN, IMAGENET_STD, Normalize, pil_to_tensor, tensor_to_pil

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
        make_dataset("isic2019", "train")  # isic2017 became a name with issue 27
    with pytest.raises(DataError, match="unknown split"):
        make_dataset("synthetic", "training")


# ---------------------------------------------------------------------------------------------------------
# Epochs in DataLoader workers, and subsets

def test_set_epoch_reaches_persistent_dataloader_workers():
    """Persistent workers keep their own copy of the dataset: the epoch must reach them through shared memory,
    or every epoch would repeat the augmentations of the one they started in."""
    ds = make_dataset("synthetic", "train", size=32, augment=True, seed=1, limit=4)

    def two_epochs(workers):
        loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=workers, persistent_workers=workers > 0)
        batches = []
        for epoch in (1, 2):
            ds.set_epoch(epoch)
            batches.append([(image, mask) for image, mask, _ in loader])
        return batches

    serial, parallel = two_epochs(0), two_epochs(2)
    for epoch in (0, 1):
        for (image, mask), (image2, mask2) in zip(serial[epoch], parallel[epoch], strict=True):
            assert torch.equal(image, image2) and torch.equal(mask, mask2)
    assert not torch.equal(serial[0][0][0], serial[1][0][0])  # epoch 2 is not epoch 1 again
    assert ds.epoch == 2


def test_subset_is_a_dataset_of_those_items_with_its_own_augmentation():
    pool = make_dataset("synthetic", "train", size=32, augment=True, seed=5, limit=10)
    pool.notes.append("a note")
    held, rest = pool.subset([3, 4, 5], augment=False), pool.subset([0, 1, 2, 6, 7, 8, 9])
    same = pool.subset([9, -10])
    assert held.ids == pool.ids[3:6] and rest.ids == [pool.ids[i] for i in (0, 1, 2, 6, 7, 8, 9)]
    assert same.ids == [pool.ids[9], pool.ids[0]] and same.augment and rest.augment and not held.augment
    assert held.images.data_ptr() == pool.images[3].data_ptr()  # a run of items: a view, not a copy
    assert held.notes == rest.notes == ["a note"]
    for k, i in enumerate((3, 4, 5)):  # not augmented: the stored image, normalised
        assert torch.equal(held[k][0], Normalize()(pool.images[i], pool.masks[i])[0])
    # augmented as a dataset built from the same items would be, epoch by epoch, apart from the pool's epoch
    index = torch.tensor([0, 1, 2, 6, 7, 8, 9])
    built = LesionDataset(pool.images[index], pool.masks[index], rest.ids, augment=True, seed=5)
    assert torch.equal(rest.images, built.images) and torch.equal(rest.masks, built.masks)
    for epoch in (0, 3):
        rest.set_epoch(epoch)
        built.set_epoch(epoch)
        assert all(torch.equal(rest[k][0], built[k][0]) and torch.equal(rest[k][1], built[k][1]) for k in range(7))
    assert pool.epoch == 0
    with pytest.raises(IndexError):
        pool.subset([10])


def test_subset_shares_the_masks_at_their_own_resolution(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    g = torch.Generator().manual_seed(0)
    for k in range(6):
        image, mask = synthetic_lesion(32 + 4 * k, g)  # each its own size
        tensor_to_pil(image).save(tmp_path / "images" / f"{k}.png")
        tensor_to_pil(mask).save(tmp_path / "masks" / f"{k}.png")  # 0/1 masks
    pool = make_dataset("folder", "train", root=tmp_path, size=32)
    part = pool.subset([4, 0, 2])
    assert part.notes == pool.notes and len(part.notes) == 1
    assert all(part.original_mask(k) is pool.original_mask(i) for k, i in enumerate((4, 0, 2)))
    assert [tuple(part.original_mask(k).shape) for k in range(3)] == [(1, 48, 48), (1, 32, 32), (1, 40, 40)]


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
