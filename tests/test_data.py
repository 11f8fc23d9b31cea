"""The data layer: synthetic lesions, the ISIC challenge's folders, medsegbench's npz files, bad input, and the
real ISIC 2016 images in ../shared/data/isic2016 where that folder exists."""
import io
import os
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from minunet import data
from minunet.data import (TEST_IMAGES, TEST_MASKS, TRAIN_IMAGES, TRAIN_MASKS, DataError, make_dataset, read_npy,
                          split_ids, synthetic_lesion)
from minunet.transforms import IMAGENET_MEAN, IMAGENET_STD, Normalize, pil_to_tensor

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "isic2016"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def to_pil(t):
    """A uint8 tensor (3, H, W) or (1, H, W) as a PIL image (RGB or L)."""
    c, h, w = t.shape
    return Image.frombytes("RGB" if c == 3 else "L", (w, h), bytes(t.permute(1, 2, 0).flatten().tolist()))


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
# The ISIC challenge's folders, built in tmp_path

def make_challenge(root, n=20, size=(40, 30), test=0):
    """Write n training (and `test` test) image/mask pairs in the challenge layout; returns {id: (image, mask)}."""
    g = torch.Generator().manual_seed(0)
    pairs = {}
    for folder, masks, count, first in [(TRAIN_IMAGES, TRAIN_MASKS, n, 0), (TEST_IMAGES, TEST_MASKS, test, 1000)]:
        if count == 0:
            continue
        (root / folder).mkdir(parents=True)
        (root / masks).mkdir()
        for k in range(first, first + count):
            image, mask = synthetic_lesion(max(size), g)
            image, mask = image[:, :size[1], :size[0]], mask[:, :size[1], :size[0]]  # (3, h, w), (1, h, w)
            id_ = f"ISIC_{k:07d}"
            to_pil(image).save(root / folder / f"{id_}.png")  # lossless, so the test can compare pixels
            to_pil(mask * 255).save(root / masks / f"{id_}_Segmentation.png")
            pairs[id_] = (image, mask)
    return pairs


def test_challenge_layout_splits_and_alignment(tmp_path):
    pairs = make_challenge(tmp_path, n=20, size=(40, 30), test=3)
    train = make_dataset("isic2016", "train", root=tmp_path, size=32)
    val = make_dataset("isic2016", "val", root=tmp_path, size=32, seed=99)  # seed does not move the split
    test = make_dataset("isic2016", "test", root=tmp_path, size=32)
    assert (len(train), len(val), len(test)) == (18, 2, 3)
    assert set(train.ids).isdisjoint(val.ids) and sorted(train.ids + val.ids) == sorted(pairs)[:20]
    assert train.ids == sorted(train.ids) and test.ids == ["ISIC_0001000", "ISIC_0001001", "ISIC_0001002"]
    assert train.images.shape == (18, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.masks.shape == (18, 1, 32, 32) and train.masks.dtype == torch.uint8
    for ds in (train, val, test):
        for i in (0, len(ds) - 1):
            image, mask = pairs[ds.ids[i]]
            # the cached pair is the file pair resized; the mask at its own resolution is the file's
            resized = to_pil(image).resize((32, 32), Image.BILINEAR)
            assert (pil_to_tensor(resized).int() - ds.images[i].int()).abs().max() <= 2
            assert torch.equal(ds.original_mask(i), mask)
            small = pil_to_tensor(to_pil(mask * 255).resize((32, 32), Image.NEAREST), mode="L") > 127
            assert torch.equal(ds.masks[i], small.to(torch.uint8))
    assert len(make_dataset("isic2016", "train", root=tmp_path, size=32, limit=5)) == 5


def test_split_is_a_fixed_ninety_ten():
    ids = [f"ISIC_{k:07d}" for k in range(749)]
    s = split_ids(ids)
    assert (len(s["train"]), len(s["val"])) == (674, 75)
    assert set(s["train"]).isdisjoint(s["val"]) and sorted(s["train"] + s["val"]) == ids
    assert s == split_ids(ids) and s["val"] != ids[-75:] and s["val"] != ids[:75]
    assert len(split_ids(ids[:15])["val"]) == 2  # round(1.5)
    assert len(split_ids(ids[:20])["val"]) == 2


def test_folder_without_expected_subfolders(tmp_path):
    (tmp_path / TRAIN_IMAGES).mkdir()
    with pytest.raises(DataError, match=TRAIN_MASKS):
        make_dataset("isic2016", "train", root=tmp_path)
    make_challenge(tmp_path / "b", n=4)
    with pytest.raises(DataError, match=f"missing folder .*{TEST_IMAGES}"):
        make_dataset("isic2016", "test", root=tmp_path / "b")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "ISBI2016_ISIC_Part1_Training_Data.zip").write_bytes(b"")  # a file: not the layout
    images, labels = fake_split(1)
    write_npz(tmp_path / "c" / "isic2016_128.npz", {"train_images": images, "train_label": labels})
    assert len(make_dataset("isic2016", "train", root=tmp_path / "c")) == 1
    with pytest.raises(DataError, match="is not a folder"):
        make_dataset("isic2016", "train", root=tmp_path / "nowhere")


def test_image_without_mask_and_mask_without_image(tmp_path):
    make_challenge(tmp_path, n=4)
    mask = tmp_path / TRAIN_MASKS / "ISIC_0000002_Segmentation.png"
    mask.rename(tmp_path / "spare.png")
    with pytest.raises(DataError, match=r"ISIC_0000002\.png has no mask: expected .*ISIC_0000002_Segmentation"):
        make_dataset("isic2016", "train", root=tmp_path)
    (tmp_path / "spare.png").rename(mask)
    (tmp_path / TRAIN_IMAGES / "ISIC_0000003.png").unlink()
    with pytest.raises(DataError, match=r"mask .*ISIC_0000003_Segmentation\.png has no image"):
        make_dataset("isic2016", "train", root=tmp_path)


def test_corrupt_and_truncated_jpeg(tmp_path):
    make_challenge(tmp_path, n=2)
    images = tmp_path / TRAIN_IMAGES
    good = io.BytesIO()
    Image.open(images / "ISIC_0000000.png").save(good, "JPEG")
    (images / "ISIC_0000000.png").unlink()
    (images / "ISIC_0000000.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match=r"cannot read .*ISIC_0000000\.jpg"):
        make_dataset("isic2016", "train", root=tmp_path)
    (images / "ISIC_0000000.jpg").write_bytes(good.getvalue()[:len(good.getvalue()) // 2])
    with pytest.raises(DataError, match=r"cannot read .*ISIC_0000000\.jpg.*truncated"):
        make_dataset("isic2016", "train", root=tmp_path)
    (images / "ISIC_0000000.jpg").write_bytes(good.getvalue())
    assert len(make_dataset("isic2016", "train", root=tmp_path)) == 2


def test_grayscale_and_rgba_images_are_converted(tmp_path):
    pairs = make_challenge(tmp_path, n=2, size=(32, 32))
    images = tmp_path / TRAIN_IMAGES
    Image.open(images / "ISIC_0000000.png").convert("L").save(images / "ISIC_0000000.png")
    rgba = Image.open(images / "ISIC_0000001.png").convert("RGBA")
    rgba.putalpha(100)
    rgba.save(images / "ISIC_0000001.png")
    ds = make_dataset("isic2016", "train", root=tmp_path, size=32)
    gray, colour = ds.images[ds.ids.index("ISIC_0000000")], ds.images[ds.ids.index("ISIC_0000001")]
    assert gray.shape == (3, 32, 32) and torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    assert torch.equal(colour, pairs["ISIC_0000001"][0])  # alpha dropped, colours kept


def test_mask_size_differs_from_image(tmp_path):
    make_challenge(tmp_path, n=2, size=(40, 30))
    mask = tmp_path / TRAIN_MASKS / "ISIC_0000001_Segmentation.png"
    Image.open(mask).resize((20, 15)).save(mask)
    with pytest.raises(DataError, match=r"mask .*ISIC_0000001_Segmentation\.png is 20x15 but its image "
                                        r".*ISIC_0000001\.png is 40x30"):
        make_dataset("isic2016", "train", root=tmp_path)


def test_mask_values_other_than_0_255_are_binarised_above_127(tmp_path):
    make_challenge(tmp_path, n=2, size=(4, 1))
    mask = tmp_path / TRAIN_MASKS / "ISIC_0000000_Segmentation.png"
    Image.frombytes("L", (4, 1), bytes([0, 127, 128, 200])).save(mask)
    ds = make_dataset("isic2016", "train", root=tmp_path, size=4)
    i = ds.ids.index("ISIC_0000000")
    assert ds.original_mask(i).flatten().tolist() == [0, 0, 1, 1]
    assert set(ds[i][1].unique().tolist()) <= {0.0, 1.0}


# ---------------------------------------------------------------------------------------------------------
# medsegbench npz files, written here in medsegbench's format without NumPy

NPY_DESCR = {torch.uint8: "|u1", torch.int64: "<i8", torch.bool: "|b1", torch.float32: "<f4"}


def npy_bytes(t):
    """The .npy (format 1.0) bytes of a C-ordered tensor."""
    header = f"{{'descr': '{NPY_DESCR[t.dtype]}', 'fortran_order': False, 'shape': {tuple(t.shape)}, }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"  # pad so the data starts on a 64-byte boundary
    data = t.contiguous().view(torch.uint8) if t.dtype != torch.bool else t.to(torch.uint8)
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + bytes(data.flatten().tolist())


def write_npz(path, arrays, compressed=False):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as z:
        for key, t in arrays.items():
            z.writestr(key + ".npy", npy_bytes(t))


def fake_split(n, size=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, size, size, 3), generator=g, dtype=torch.uint8)  # (N, H, W, 3)
    labels = torch.randint(0, 2, (n, size, size), generator=g, dtype=torch.uint8)  # (N, H, W) in {0, 1}
    return images, labels


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_splits(tmp_path, compressed):
    splits = {"train": fake_split(5, seed=1), "val": fake_split(2, seed=2), "test": fake_split(3, seed=3)}
    arrays = {}
    for split, (images, labels) in splits.items():
        arrays[f"{split}_images"], arrays[f"{split}_label"] = images, labels
    arrays["test_label"] = arrays["test_label"].to(torch.int64)[..., None]  # (N, H, W, 1) int64 also reads
    write_npz(tmp_path / "isic2016_128.npz", arrays, compressed)
    for split, (images, labels) in splits.items():
        ds = make_dataset("isic2016", split, root=tmp_path, size=128)
        assert len(ds) == len(images) and ds.ids[1] == f"isic2016_{split}_0001"
        assert torch.equal(ds.images, images.permute(0, 3, 1, 2))
        assert torch.equal(ds.masks[:, 0], labels)
        image, mask, _ = ds[1]
        assert image.shape == (3, 128, 128) and mask.shape == (1, 128, 128) and mask.dtype == torch.float32
        assert torch.allclose(unnormalise(image), images[1].permute(2, 0, 1) / 255, atol=1e-5)
    assert len(make_dataset("isic2016", "train", root=tmp_path, size=128, limit=2)) == 2


def test_npz_labels_in_0_255_and_fortran_order(tmp_path):
    t = torch.arange(24, dtype=torch.uint8).view(2, 3, 4)
    fortran = npy_bytes(t.permute(2, 1, 0)).replace(b"'fortran_order': False", b"'fortran_order': True ")
    fortran = fortran.replace(b"(4, 3, 2)", b"(2, 3, 4)")
    assert torch.equal(read_npy(bytearray(fortran)), t)
    images, labels = fake_split(2)
    stored = labels * 255
    stored[0, 0, :2] = torch.tensor([100, 200])  # stored as 0/255: binarised at > 127
    write_npz(tmp_path / "isic2016_128.npz", {"train_images": images, "train_label": stored})
    masks = make_dataset("isic2016", "train", root=tmp_path).masks[:, 0]  # (2, 128, 128)
    assert masks[0, 0, :2].tolist() == [0, 1]
    assert torch.equal(masks[:, 1:], labels[:, 1:])


def test_npz_missing_split(tmp_path):
    images, labels = fake_split(2)
    write_npz(tmp_path / "isic2016_128.npz", {"train_images": images, "train_label": labels})
    with pytest.raises(DataError, match=r"isic2016_128\.npz has no array 'val_images'"):
        make_dataset("isic2016", "val", root=tmp_path)


def test_npz_wrong_size_corrupt_and_unavailable_size(tmp_path):
    images, labels = fake_split(2, size=64)
    write_npz(tmp_path / "isic2016_128.npz", {"train_images": images, "train_label": labels})
    with pytest.raises(DataError, match=r"isic2016_128\.npz holds 64x64 images, not 128x128"):
        make_dataset("isic2016", "train", root=tmp_path)
    (tmp_path / "isic2016_256.npz").write_bytes(b"PK garbage")
    with pytest.raises(DataError, match=r"cannot read .*isic2016_256\.npz"):
        make_dataset("isic2016", "train", root=tmp_path, size=256)
    with pytest.raises(DataError, match="128, 256 or 512 px, not 100"):
        make_dataset("isic2016", "train", root=tmp_path, size=100)


def test_offline_without_npz(tmp_path, monkeypatch):
    import torchvision.datasets.utils
    calls = []

    def offline(url, root, filename, md5):
        calls.append((url, filename, md5))
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", offline)
    with pytest.raises(DataError) as e:
        make_dataset("isic2016", "train", root=tmp_path)
    message = str(e.value)
    assert str(tmp_path / "isic2016_128.npz") in message and "\n" not in message
    assert "https://zenodo.org/records/13358372" in message and "--data-root" in message
    url, filename, md5 = calls[0]  # medsegbench's own metadata
    assert filename == "isic2016_128.npz" and url.startswith(data.ZENODO_RECORD)
    assert md5 == "4fcee7c35a990f25f2c82ad3ed2f4f54"


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
