"""medsegbench's npz files, written here in medsegbench's format without NumPy, and read by minunet.data.npz."""
import os
import zipfile

import pytest
import torch

from minunet.data import npz
from minunet.data import DataError, make_dataset, read_npy
from minunet.transforms import IMAGENET_MEAN, IMAGENET_STD

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def unnormalise(image):
    """A normalised float image (3, H, W) back in [0, 1]."""
    return image * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)


NPY_DESCR = {torch.uint8: "|u1", torch.int16: "<i2", torch.int32: "<i4", torch.int64: "<i8", torch.bool: "|b1",
             torch.float32: "<f4", torch.float64: "<f8"}


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
    assert "https://zenodo.org/records/13358372" in message and "pass root=DIR holding it" in message
    url, filename, md5 = calls[0]  # medsegbench's own metadata
    assert filename == "isic2016_128.npz" and url == npz.npz_source("isic2016", 128)[0]
    assert md5 == "4fcee7c35a990f25f2c82ad3ed2f4f54"




def test_a_file_named_like_the_challenge_layout_is_not_the_layout(tmp_path):
    """Moved from test_data_folders.py::test_folder_without_expected_subfolders: only a folder makes the layout."""
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "ISBI2016_ISIC_Part1_Training_Data.zip").write_bytes(b"")  # a file: not the layout
    images, labels = fake_split(1)
    write_npz(tmp_path / "c" / "isic2016_128.npz", {"train_images": images, "train_label": labels})
    assert len(make_dataset("isic2016", "train", root=tmp_path / "c")) == 1


def test_npz_label_maps_and_empty_masks(tmp_path):
    """Issue 23: labels of 0 and 2 are lesion where 2 (before: every mask empty); classes and a split of empty
    masks are refused in one line; some empty masks are said in a note."""
    images, labels = fake_split(3)
    path = tmp_path / "isic2016_128.npz"
    write_npz(path, {"train_images": images, "train_label": labels * 2})
    ds = make_dataset("isic2016", "train", root=tmp_path)
    assert torch.equal(ds.masks[:, 0], labels)
    assert ds.notes == [f"masks in {path} (train_label) hold 0 and 2, not 0 and 255: read 2 as lesion"]
    three = labels.clone()
    three[1, 0, 0] = 2
    write_npz(path, {"train_images": images, "train_label": three})
    with pytest.raises(DataError) as e:
        make_dataset("isic2016", "train", root=tmp_path)
    assert str(e.value) == (f"masks in {path} (train_label) hold the values 0, 1, 2: a label map with 3 classes, not a "
                            f"lesion mask; medsegbench names two classes for it: save the lesion as 255 and all else as 0")
    some = labels.clone()
    some[1] = 0
    write_npz(path, {"train_images": images, "train_label": some})
    assert make_dataset("isic2016", "train", root=tmp_path).notes == [
        f"1 of the 3 train masks in {path} (train_label) are empty (first: isic2016_train_0001): read as images "
        f"without lesion"]
    write_npz(path, {"train_images": images, "train_label": labels * 0})
    with pytest.raises(DataError) as e:
        make_dataset("isic2016", "train", root=tmp_path)
    assert str(e.value) == (f"all 3 train masks in {path} (train_label) are empty (no lesion pixel): there is no "
                            f"lesion to learn or score; draw each lesion in its mask as 255 on 0")


@pytest.fixture
def downloads(monkeypatch):
    """Every download asked of torchvision, as (root, filename); none happens (offline)."""
    import torchvision.datasets.utils
    calls = []

    def offline(url, root, filename, md5):
        calls.append((str(root), filename))
        raise OSError("offline")

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", offline)
    return calls


def test_a_users_own_folder_is_pointed_to_data_folder_and_never_downloaded_into(tmp_path, downloads):
    """Issue 23, case 14: --data isic2016 --data-root DIR where DIR holds images/ and masks/ (before: a download
    into the user's folder, then advice to use --data synthetic)."""
    from test_data_own_folder import make_folder
    make_folder(tmp_path / "mine", n=6)
    before = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "mine").rglob("*"))
    with pytest.raises(DataError) as e:
        make_dataset("isic2016", "train", root=tmp_path / "mine")
    assert str(e.value) == (f"{tmp_path / 'mine'} holds images/ and masks/, a folder of your own (isic2016 reads the "
                            f"ISIC 2016 challenge folders or medsegbench's npz files): pass name=folder and "
                            f"root={tmp_path / 'mine'}")
    assert downloads == [] and before == sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "mine").rglob("*"))
    # a folder holding anything but npz files: no download into it either
    (tmp_path / "photos").mkdir()
    for name in ("b.jpg", "a.jpg", "notes.txt", "c.png"):
        (tmp_path / "photos" / name).write_bytes(b"the user's")
    with pytest.raises(DataError) as e:
        make_dataset("isic2016", "val", root=tmp_path / "photos")
    assert str(e.value) == (
        f"{tmp_path / 'photos' / 'isic2016_128.npz'} is missing, and minunet downloads it only into an empty folder, "
        f"one holding medsegbench's npz files, or ~/.medsegbench, not beside a.jpg, b.jpg, c.png and 1 more: pass "
        f"root=DIR holding isic2016_128.npz or the ISIC 2016 challenge folders (ISBI2016_ISIC_Part1_Training_Data/, "
        f"...), or name=folder for a folder of images/ and masks/, or leave root out")
    assert downloads == [] and sorted(os.listdir(tmp_path / "photos")) == ["a.jpg", "b.jpg", "c.png", "notes.txt"]


def test_downloads_go_into_an_empty_folder_one_of_npz_files_or_the_default(tmp_path, downloads, monkeypatch):
    (tmp_path / "empty").mkdir()
    (tmp_path / "npz").mkdir()
    images, labels = fake_split(1)
    write_npz(tmp_path / "npz" / "isic2016_256.npz", {"train_images": images, "train_label": labels})
    (tmp_path / "npz" / ".DS_Store").write_bytes(b"")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home" / ".medsegbench").mkdir(parents=True)
    (tmp_path / "home" / ".medsegbench" / "README.txt").write_text("medsegbench's own folder")
    for root in (tmp_path / "empty", tmp_path / "npz", None):
        with pytest.raises(DataError, match="could not be downloaded"):
            make_dataset("isic2016", "train", root=root)
    assert downloads == [(str(tmp_path / "empty"), "isic2016_128.npz"), (str(tmp_path / "npz"), "isic2016_128.npz"),
                         (str(tmp_path / "home" / ".medsegbench"), "isic2016_128.npz")]


def test_data_folder_on_the_isic_layouts_points_to_data_isic2016(tmp_path):
    images, labels = fake_split(1)
    (tmp_path / "npz").mkdir()
    write_npz(tmp_path / "npz" / "isic2016_128.npz", {"train_images": images, "train_label": labels})
    (tmp_path / "challenge" / "ISBI2016_ISIC_Part1_Training_Data").mkdir(parents=True)
    with pytest.raises(DataError) as e:
        make_dataset("folder", "train", root=tmp_path / "npz")
    assert str(e.value) == (f"{tmp_path / 'npz'} holds medsegbench's npz files (isic2016_128.npz, ...), not images/ "
                            f"and masks/: pass name=isic2016 and root={tmp_path / 'npz'}")
    with pytest.raises(DataError) as e:
        make_dataset("folder", "val", root=tmp_path / "challenge")
    assert str(e.value) == (f"{tmp_path / 'challenge'} holds the ISIC 2016 challenge folders "
                            f"(ISBI2016_ISIC_Part1_Training_Data, ...), not images/ and masks/: pass name=isic2016 "
                            f"and root={tmp_path / 'challenge'}")


def test_a_dataset_whose_foreground_is_any_non_zero_label_reads_as_two_classes(tmp_path):
    """Issue 34, case 1: pandental and dynamicnuclear, whose INFO labels are {'0': background, 'non-zero':
    foreground} (before: KeyError '1', a traceback, even offline): every label above 0 is foreground."""
    from minunet.data.catalog import DataSpec, spec_of
    assert spec_of("pandental") == spec_of("dynamicnuclear") == DataSpec(1, ("background", "foreground"))
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 128, 128), generator=g, dtype=torch.uint8)  # gray (N, H, W)
    labels = torch.zeros(3, 128, 128, dtype=torch.int32)  # instances: 1, 2, 7, 300
    labels[:, 10:20, 10:20], labels[:, 30:40, 30:40], labels[0, 50:60, 50:60], labels[1, 70:80, 5:9] = 1, 2, 7, 300
    write_npz(tmp_path / "dynamicnuclear_128.npz", {"val_images": images, "val_label": labels})
    ds = make_dataset("dynamicnuclear", "val", root=tmp_path)
    assert ds.spec == DataSpec(1, ("background", "foreground")) and ds.notes == []
    assert torch.equal(ds.masks[:, 0], (labels != 0).to(torch.uint8))


def test_a_split_of_no_images_is_refused_as_a_folders_is(tmp_path):
    """Issue 34, case 2: an npz whose val (or train, or test) arrays hold 0 images (before: train died in a
    ZeroDivisionError, evaluate in KeyError 'threshold_jaccard')."""
    images, labels = fake_split(2)
    path = tmp_path / "isic2016_128.npz"
    for split in ("train", "val", "test"):
        arrays = {f"{s}_{kind}": t for s in ("train", "val", "test") for kind, t in zip(("images", "label"),
                                                                                       (images, labels))}
        arrays[f"{split}_images"], arrays[f"{split}_label"] = images[:0], labels[:0]
        write_npz(path, arrays)
        with pytest.raises(DataError) as e:
            make_dataset("isic2016", split, root=tmp_path)
        assert str(e.value) == (f"{path} holds no {split} images ({split}_images is (0, 128, 128, 3)): every split "
                                f"needs at least one: delete it to download it again, or pass root=DIR holding a "
                                f"complete file")


@pytest.mark.parametrize("dtype, factor", [(torch.float32, 1 / 255), (torch.float64, 1 / 255), (torch.float32, 1),
                                           (torch.int64, 1), (torch.int16, 1), (torch.int32, 256)])
def test_npz_images_of_other_dtypes_are_read_as_their_values_say(tmp_path, dtype, factor):
    """Issue 34, case 7: float images in 0..1 are scaled by 255 (before: cast to uint8, every image black);
    float or integer images in 0..255 keep their values; 16-bit ones keep their high byte, as image files do."""
    images, labels = fake_split(2)
    stored = (images.double() * factor).to(dtype)  # (N, H, W, 3)
    write_npz(tmp_path / "isic2016_128.npz", {"train_images": stored, "train_label": labels})
    read = make_dataset("isic2016", "train", root=tmp_path).images  # (N, 3, H, W) uint8
    expected = (stored.double() * 255).round() if factor < 1 else stored >> 8 if factor > 1 else stored
    assert torch.equal(read, expected.to(torch.uint8).permute(0, 3, 1, 2))
    assert read.float().mean() > 64  # not black


@pytest.mark.parametrize("dtype, bad, shown", [(torch.float32, -0.5, "from -0.5 to 1"),
                                               (torch.float32, 300.0, "from 0 to 300"),
                                               (torch.float32, float("nan"), "not-a-number"),
                                               (torch.int32, 70000, "from 0 to 70000")])
def test_npz_images_no_scale_fits_are_refused_in_one_line(tmp_path, dtype, bad, shown):
    images, labels = fake_split(2)
    stored = images.to(dtype) / 255 if dtype.is_floating_point else images.to(dtype)
    stored[1, 0, 0, 0] = bad
    if dtype.is_floating_point:
        stored[0, 0, 0, 0] = 1.0 if bad != 300 else 0
    path = tmp_path / "isic2016_128.npz"
    write_npz(path, {"train_images": stored, "train_label": labels})
    with pytest.raises(DataError) as e:
        make_dataset("isic2016", "train", root=tmp_path)
    assert str(e.value).startswith(f"{path}: train_images") and shown in str(e.value) and "\n" not in str(e.value)


def test_npz_labels_that_are_no_whole_numbers_are_refused(tmp_path):
    """Issue 34, case 7's sibling: float labels of 0.5 were truncated to background."""
    images, labels = fake_split(2)
    soft = labels.float() * 0.5
    path = tmp_path / "isic2016_128.npz"
    write_npz(path, {"train_images": images, "train_label": soft})
    with pytest.raises(DataError) as e:
        make_dataset("isic2016", "train", root=tmp_path)
    assert str(e.value).startswith(f"{path}: train_label holds values that are not whole numbers (0.5")
