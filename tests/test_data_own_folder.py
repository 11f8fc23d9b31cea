"""Your own folder of images and masks (make_dataset("folder", ...)): read like the challenge's folders, split
the same way, and a one-line error or note for each thing wrong with it."""
import pytest
import torch
from PIL import Image

from minunet.data import TRAIN_IMAGES, TRAIN_MASKS, DataError, make_dataset, split_ids, synthetic_lesion
from minunet.transforms import pil_to_tensor, tensor_to_pil

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def make_folder(root, n=10, size=(40, 30), test=0, lesion=255, first=0):
    """Write n image/mask pairs in root/images and root/masks (and `test` in root/test/...), masks of 0 and
    `lesion`; returns {id: (image, mask)} with masks in {0, 1}."""
    g = torch.Generator().manual_seed(first)
    pairs = {}
    for base, count, start in [(root, n, first), (root / "test", test, first + 1000)]:
        if count == 0:
            continue
        (base / "images").mkdir(parents=True, exist_ok=True)
        (base / "masks").mkdir(exist_ok=True)
        for k in range(start, start + count):
            image, mask = synthetic_lesion(max(size), g)
            image, mask = image[:, :size[1], :size[0]], mask[:, :size[1], :size[0]]  # (3, h, w), (1, h, w)
            id_ = f"lesion_{k:03d}"
            tensor_to_pil(image.contiguous()).save(base / "images" / f"{id_}.png")
            tensor_to_pil((mask * lesion).contiguous()).save(base / "masks" / f"{id_}.png")
            pairs[id_] = (image, mask)
    return pairs


def test_folder_reads_every_pair_and_splits_like_the_challenge(tmp_path):
    pairs = make_folder(tmp_path, n=20, size=(40, 30), test=3)
    train = make_dataset("folder", "train", root=tmp_path, size=32)
    val = make_dataset("folder", "val", root=tmp_path, size=32)
    test = make_dataset("folder", "test", root=tmp_path, size=32)
    ids = sorted(k for k in pairs if int(k.split("_")[1]) < 1000)
    assert (train.ids, val.ids) == (split_ids(ids)["train"], split_ids(ids)["val"]) and len(val) == 2
    assert test.ids == ["lesion_1000", "lesion_1001", "lesion_1002"]
    for ds in (train, val, test):
        assert ds.notes == [] and ds.skipped == []
        for i, id_ in enumerate(ds.ids):
            image, mask = pairs[id_]
            resized = pil_to_tensor(tensor_to_pil(image.contiguous()).resize((32, 32), Image.BILINEAR))
            assert (resized.int() - ds.images[i].int()).abs().max() <= 2
            assert torch.equal(ds.original_mask(i), mask)
            small = pil_to_tensor(tensor_to_pil((mask * 255).contiguous()).resize((32, 32), Image.NEAREST)) > 127
            assert torch.equal(ds.masks[i], small[:1].to(torch.uint8))
    assert len(make_dataset("folder", "train", root=tmp_path, size=32, limit=4)) == 4
    # a height and width, e.g. ISIC's 4:3
    wide = make_dataset("folder", "val", root=tmp_path, size=(24, 32))
    assert wide.images.shape == (2, 3, 24, 32) and wide[0][1].shape == (1, 24, 32)


def test_a_folder_and_the_challenge_layout_of_the_same_files_give_the_same_dataset(tmp_path):
    pairs = make_folder(tmp_path / "own", n=12)
    (tmp_path / "isic" / TRAIN_IMAGES).mkdir(parents=True)
    (tmp_path / "isic" / TRAIN_MASKS).mkdir()
    for id_ in pairs:
        (tmp_path / "own" / "images" / f"{id_}.png").rename(tmp_path / "isic" / TRAIN_IMAGES / f"{id_}.png")
        (tmp_path / "own" / "masks" / f"{id_}.png").rename(tmp_path / "isic" / TRAIN_MASKS / f"{id_}_Segmentation.png")
    make_folder(tmp_path / "own", n=12)  # the same files again
    for split in ("train", "val"):
        own = make_dataset("folder", split, root=tmp_path / "own", size=32)
        isic = make_dataset("isic2016", split, root=tmp_path / "isic", size=32)
        assert own.ids == isic.ids and torch.equal(own.images, isic.images) and torch.equal(own.masks, isic.masks)


def test_missing_folders_say_what_to_create(tmp_path):
    with pytest.raises(DataError) as e:
        make_dataset("folder", "train")
    assert str(e.value) == "folder data need a root folder: pass root=DIR holding images/ and masks/"
    with pytest.raises(DataError, match=r"data root .*nowhere is not a folder: pass root=DIR with images/"):
        make_dataset("folder", "train", root=tmp_path / "nowhere")
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError) as e:
        make_dataset("folder", "val", root=tmp_path)
    assert str(e.value) == (f"missing folder {tmp_path / 'masks'}: the folder dataset reads images/ and masks/ in "
                            f"{tmp_path}: create it, with the images (.jpg, .jpeg or .png) and one mask "
                            f"<image name>.png per image (0 background, 255 or 1 lesion)")
    (tmp_path / "images").rmdir()
    make_folder(tmp_path, n=6)
    with pytest.raises(DataError) as e:
        make_dataset("folder", "test", root=tmp_path)
    assert str(e.value) == (f"missing folder {tmp_path / 'test' / 'images'}: the folder dataset reads test/images/ "
                            f"and test/masks/ for the test split in {tmp_path}: create it, with the images (.jpg, "
                            f".jpeg or .png) and one mask <image name>.png per image (0 background, 255 or 1 lesion)")


def test_too_few_images_for_a_validation_split(tmp_path):
    make_folder(tmp_path, n=5)
    with pytest.raises(DataError) as e:
        make_dataset("folder", "val", root=tmp_path)
    assert str(e.value) == (f"no images for split val in {tmp_path / 'images'}: val takes round(n / 10) of its "
                            f"5 images, so it needs at least 6")
    assert len(make_dataset("folder", "train", root=tmp_path)) == 5
    make_folder(tmp_path / "six", n=6)
    assert len(make_dataset("folder", "val", root=tmp_path / "six")) == 1


def test_unpaired_and_misnamed_files_are_named(tmp_path):
    make_folder(tmp_path, n=6)
    images, masks = tmp_path / "images", tmp_path / "masks"
    (masks / "lesion_002.png").rename(masks / "lesion_002_Segmentation.png")
    with pytest.raises(DataError) as e:
        make_dataset("folder", "train", root=tmp_path)
    assert str(e.value) == (f"image {images / 'lesion_002.png'} has no mask: expected {masks / 'lesion_002.png'} "
                            f"(found lesion_002_Segmentation.png: masks are PNG files named lesion_002.png)")
    (masks / "lesion_002_Segmentation.png").rename(masks / "lesion_002.png")
    (images / "lesion_003.png").unlink()
    with pytest.raises(DataError) as e:
        make_dataset("folder", "train", root=tmp_path)
    assert str(e.value) == (f"mask {masks / 'lesion_003.png'} has no image lesion_003.jpg, lesion_003.jpeg or "
                            f"lesion_003.png in {images}")
    (masks / "lesion_003.png").unlink()
    Image.open(masks / "lesion_004.png").resize((20, 15)).save(masks / "lesion_004.png")
    with pytest.raises(DataError) as e:
        make_dataset("folder", "train", root=tmp_path)
    assert str(e.value) == (f"mask {masks / 'lesion_004.png'} is 20x15 but its image {images / 'lesion_004.png'} "
                            f"is 40x30: a mask must have its image's width and height")


@pytest.mark.parametrize("layout", ["folder", "isic2016"])
def test_an_id_with_two_image_files_names_both(tmp_path, layout):
    make_folder(tmp_path, n=6)
    images = tmp_path / "images"
    if layout == "isic2016":
        (tmp_path / "images").rename(tmp_path / TRAIN_IMAGES)
        (tmp_path / "masks").rename(tmp_path / TRAIN_MASKS)
        for mask in (tmp_path / TRAIN_MASKS).iterdir():
            mask.rename(mask.with_name(mask.stem + "_Segmentation.png"))
        images = tmp_path / TRAIN_IMAGES
    Image.open(images / "lesion_001.png").convert("RGB").save(images / "lesion_001.jpg")
    with pytest.raises(DataError) as e:
        make_dataset(layout, "train", root=tmp_path)
    assert str(e.value) == (f"two images for the id lesion_001: {images / 'lesion_001.jpg'} and "
                            f"{images / 'lesion_001.png'}: keep one of them")


def test_masks_of_0_and_1_are_read_and_said_once(tmp_path):
    pairs = make_folder(tmp_path, n=20, lesion=1)  # 8-bit PNGs that look black
    for split in ("train", "val"):
        ds = make_dataset("folder", split, root=tmp_path, size=32)
        assert ds.notes == [f"masks in {tmp_path / 'masks'} hold 0 and 1, not 0 and 255: read 1 as lesion"]
        assert all(torch.equal(ds.original_mask(i), pairs[id_][1]) for i, id_ in enumerate(ds.ids))
        assert all(ds.masks[i].any() for i in range(len(ds)))  # each a real lesion, not an empty mask
    # a few 0/1 masks among 0/255 ones: counted, the first named
    make_folder(tmp_path / "mixed", n=10)
    first, second = split_ids(sorted(pairs)[:10])["train"][2:4]
    for id_ in (second, first):
        tensor_to_pil(pairs[id_][1].contiguous()).save(tmp_path / "mixed" / "masks" / f"{id_}.png")
    train = make_dataset("folder", "train", root=tmp_path / "mixed")
    assert train.notes == [f"2 of the 9 train masks in {tmp_path / 'mixed' / 'masks'} hold 0 and 1, not "
                           f"0 and 255 (first: {first}.png): read 1 as lesion"]
    assert make_dataset("folder", "val", root=tmp_path / "mixed").notes == []


def test_grey_masks_are_binarised_and_counted_in_one_note(tmp_path):
    pairs = make_folder(tmp_path, n=10)
    masks = tmp_path / "masks"
    for id_ in ("lesion_005", "lesion_002"):  # anti-aliased edges: some grey levels
        grey = pairs[id_][1] * 255
        grey[0, 0, :3] = torch.tensor([90, 128, 250])
        tensor_to_pil(grey.contiguous()).save(masks / f"{id_}.png")
    train = make_dataset("folder", "train", root=tmp_path)
    assert train.notes == [f"2 of the 9 train masks in {masks} are not binary (first: lesion_002.png): "
                           f"binarised at > 127"]
    i = train.ids.index("lesion_002")
    assert train.original_mask(i)[0, 0, :3].tolist() == [0, 1, 1]
    assert torch.equal(train.original_mask(i)[:, 1:], pairs["lesion_002"][1][:, 1:])


def test_unreadable_pairs_of_a_folder_can_be_skipped(tmp_path):
    make_folder(tmp_path, n=0, test=3)
    broken = tmp_path / "test" / "masks" / "lesion_1001.png"
    broken.write_bytes(b"")
    with pytest.raises(DataError) as e:
        make_dataset("folder", "test", root=tmp_path)
    assert str(e.value) == f"cannot read {broken}: the file is empty (0 bytes): copy it again, or remove it"
    ds = make_dataset("folder", "test", root=tmp_path, skip_unreadable=True)
    assert ds.ids == ["lesion_1000", "lesion_1002"] and ds.skipped == [str(e.value)]


# ---------------------------------------------------------------------------------------------------------
# issue 23, case 6: label maps and empty masks are never read silently wrong

def test_masks_of_0_and_a_small_label_are_read_as_lesion_and_said(tmp_path):
    for value in (2, 3):
        pairs = make_folder(tmp_path / str(value), n=12, lesion=value)  # label maps: 0 background, 2 (3) lesion
        masks = tmp_path / str(value) / "masks"
        for split in ("train", "val"):
            ds = make_dataset("folder", split, root=tmp_path / str(value), size=32)
            assert ds.notes == [f"masks in {masks} hold 0 and {value}, not 0 and 255: read {value} as lesion"]
            assert all(torch.equal(ds.original_mask(i), pairs[id_][1]) for i, id_ in enumerate(ds.ids))
            assert all(ds.masks[i].any() for i in range(len(ds)))  # before: every mask empty


def save_mask(path, mask):
    tensor_to_pil(mask.to(torch.uint8).contiguous()).save(path)


def test_label_maps_of_several_classes_are_refused_in_one_line(tmp_path):
    pairs = make_folder(tmp_path, n=20, lesion=1)  # val: 2 masks
    masks = tmp_path / "masks"
    for split in ("train", "val"):
        first = split_ids(sorted(pairs))[split][0]
        three = pairs[first][1].clone()
        three[0, :4, :4] = 2  # a third class in one mask of the split
        save_mask(masks / f"{first}.png", three)
        with pytest.raises(DataError) as skipping:  # evaluate's reading: refused too, never skipped as unreadable
            make_dataset("folder", split, root=tmp_path, size=32, skip_unreadable=True)
        with pytest.raises(DataError) as e:
            make_dataset("folder", split, root=tmp_path, size=32)
        assert str(skipping.value) == str(e.value)
        assert str(e.value) == (f"masks in {masks} hold the values 0, 1, 2 ({first}.png: 0, 1, 2): a label map with "
                                f"3 classes, not a lesion mask: save the lesion as 255 and all else as 0, or pass "
                                f"classes=3 to read them as class indices 0..2")
        # each mask of two values, but 1 in some and 2 in others: classes too, never merged into one lesion
        save_mask(masks / f"{first}.png", pairs[first][1] * 2)
        with pytest.raises(DataError, match=rf"hold the values 0, 1, 2 \({first}\.png: 0, 2\): a label map with 3"):
            make_dataset("folder", split, root=tmp_path, size=32)


def test_empty_masks_are_counted_and_a_split_of_empty_masks_is_refused(tmp_path):
    pairs = make_folder(tmp_path, n=12)
    masks = tmp_path / "masks"
    train_ids = split_ids(sorted(pairs))["train"]
    for id_ in train_ids[3:5]:
        save_mask(masks / f"{id_}.png", pairs[id_][1] * 0)
    train = make_dataset("folder", "train", root=tmp_path, size=32)
    assert train.notes == [f"2 of the 11 train masks in {masks} are empty (first: {train_ids[3]}.png): read as "
                           f"images without lesion"]
    for id_ in pairs:
        save_mask(masks / f"{id_}.png", pairs[id_][1] * 0)
    for split in ("train", "val"):
        with pytest.raises(DataError) as e:
            make_dataset("folder", split, root=tmp_path, size=32)
        n = len(split_ids(sorted(pairs))[split])
        assert str(e.value) == (f"all {n} {split} masks in {masks} are empty (no lesion pixel): there is no lesion "
                                f"to learn or score; draw each lesion in its mask as 255 on 0")


def test_lesions_lost_by_resizing_a_training_mask_are_said(tmp_path):
    pairs = make_folder(tmp_path, n=12, size=(200, 200))
    masks = tmp_path / "masks"
    first = split_ids(sorted(pairs))["train"][0]
    dot = torch.zeros(1, 200, 200)
    dot[0, 101, 101] = 1  # one pixel: at 32 x 32 no pixel centre falls on it
    save_mask(masks / f"{first}.png", dot * 255)
    train = make_dataset("folder", "train", root=tmp_path, size=32)
    assert train.notes == [f"1 of the 11 train masks in {masks} are empty (first: {first}.png): read as images "
                           f"without lesion; 1 of them only at 32x32, their lesions smaller than a pixel there"]
    assert train.original_mask(train.ids.index(first)).sum() == 1  # scored at its own size: still there
    for id_ in pairs:
        save_mask(masks / f"{id_}.png", dot * 255)
    with pytest.raises(DataError) as e:
        make_dataset("folder", "train", root=tmp_path, size=32)
    assert str(e.value) == (f"all 11 train masks in {masks} are empty (no lesion pixel at 32x32): there is no lesion "
                            f"to learn or score; draw each lesion in its mask as 255 on 0, or train at a larger size")


# ---------------------------------------------------------------------------------------------------------
# issue 23, case 16: a name in two Unicode forms (macOS writes decomposed é: NFD) is one id

@pytest.mark.parametrize("layout", ["folder", "isic2016"])
def test_names_pair_under_unicode_normalisation(tmp_path, layout):
    import unicodedata

    pairs = make_folder(tmp_path, n=12)
    images, masks, suffix = tmp_path / "images", tmp_path / "masks", ".png"
    if layout == "isic2016":
        images, masks, suffix = tmp_path / TRAIN_IMAGES, tmp_path / TRAIN_MASKS, "_Segmentation.png"
        (tmp_path / "images").rename(images)
        (tmp_path / "masks").rename(masks)
    renamed = {}
    for k, id_ in enumerate(sorted(pairs)):
        new = unicodedata.normalize("NFC", f"lésion_{k:03d}_ü")  # the image's name composed ...
        (images / f"{id_}.png").rename(images / f"{new}.png")
        decomposed = unicodedata.normalize("NFD", new)  # ... its mask's decomposed, as macOS writes it
        assert decomposed != new
        (masks / f"{id_}.png").rename(masks / f"{decomposed}{suffix}")
        renamed[new] = pairs[id_]
    for split in ("train", "val"):
        ds = make_dataset(layout, split, root=tmp_path, size=32)
        assert ds.ids == split_ids(sorted(renamed))[split]  # the composed ids, split as those names always are
        assert all(torch.equal(ds.original_mask(i), renamed[id_][1]) for i, id_ in enumerate(ds.ids))
    # one name in both forms among the images is one id in two files
    first = sorted(renamed)[0]
    Image.open(images / f"{first}.png").save(images / f"{unicodedata.normalize('NFD', first)}.png")
    with pytest.raises(DataError, match=f"two images for the id {first}: "):
        make_dataset(layout, "train", root=tmp_path, size=32)
