"""Folders of image and mask files (minunet.data.folders): the ISIC challenge's layout and your own folder, built in
tmp_path; what each reads, how it pairs and splits the files, and the one-line errors for bad ones."""
import io

import pytest
import torch
from PIL import Image

from minunet.data import (TEST_IMAGES, TEST_MASKS, TRAIN_IMAGES, TRAIN_MASKS, DataError, make_dataset, split_ids,
                          synthetic_lesion)
from minunet.transforms import pil_to_tensor, tensor_to_pil as to_pil

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


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
    # a file named like the layout is not the layout: test_data_npz.py::test_a_file_named_like_the_challenge_...
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




def test_masks_at_their_own_resolution_are_read_once(tmp_path, monkeypatch):
    """Validation scores at each mask's own resolution every epoch: from memory, not from the files."""
    pairs = make_challenge(tmp_path, n=10, size=(40, 30), test=2)
    datasets = [make_dataset("isic2016", split, root=tmp_path, size=32) for split in ("train", "val", "test")]

    def no_decoding(*args, **kwargs):
        raise AssertionError("a file was opened")

    monkeypatch.setattr(Image, "open", no_decoding)
    for ds in datasets:
        for i, id_ in enumerate(ds.ids):
            original = ds.original_mask(i)
            assert torch.equal(original, pairs[id_][1]) and original.dtype == torch.uint8
            assert original.untyped_storage().nbytes() == 40 * 30  # one byte a pixel, as the docstring says
            ds[i]
