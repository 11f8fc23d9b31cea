"""ISIC 2017 and 2018 in their challenges' own folders (issue 27): train, val and test each from its own folder,
masks named ID_segmentation.png and kept at their own resolution, the superpixel maps of 2017 left out, a
missing folder named in one line. Tiny folders made by the test."""
import pytest
import torch

from minunet.data.challenges import LAYOUTS
from minunet.cli import main
from minunet.data import DataError, make_dataset, synthetic_lesion
from minunet.transforms import tensor_to_pil

COUNTS = {"train": 7, "val": 3, "test": 2}


def challenge(root, name, size=(40, 30), with_test=True):
    """Write challenge `name`'s folders under root: COUNTS images per split, masks of 0/255 at the image's size
    (width x height `size`), and in 2017's training folder a superpixel map beside each image."""
    layout, g = LAYOUTS[name], torch.Generator().manual_seed(0)
    for split, count in COUNTS.items():
        if split == "test" and not with_test:
            continue
        images, masks = (root / folder for folder in getattr(layout, split))
        images.mkdir(parents=True)
        masks.mkdir(parents=True)
        for k in range(count):
            image, mask = synthetic_lesion(max(size), g)
            image, mask = image[:, :size[1], :size[0]].contiguous(), mask[:, :size[1], :size[0]].contiguous()
            id_ = f"ISIC_{1000 * list(COUNTS).index(split) + k:07d}"
            tensor_to_pil(image).save(images / f"{id_}.jpg", quality=95)
            tensor_to_pil(mask * 255).save(masks / f"{id_}{layout.mask_suffix}")
            if name == "isic2017" and split == "train":
                tensor_to_pil(image).save(images / f"{id_}_superpixels.png")
    return root


@pytest.mark.parametrize("name", ["isic2017", "isic2018"])
def test_each_split_comes_from_its_own_folder_at_the_masks_resolution(tmp_path, name):
    root = challenge(tmp_path, name)
    for split, count in COUNTS.items():
        dataset = make_dataset(name, split, str(root), size=32)
        assert len(dataset) == count, split  # no 90/10 carving: the challenge's own validation split
        assert {int(i[len("ISIC_"):]) // 1000 for i in dataset.ids} == {list(COUNTS).index(split)}  # its folder
        assert dataset.images.shape[-2:] == (32, 32) and dataset.original_mask(0).shape == (1, 30, 40)
        assert set(dataset.original_mask(0).unique().tolist()) <= {0, 1} and dataset.original_mask(0).any()


def test_a_missing_split_folder_and_a_root_of_another_year_are_one_line(tmp_path):
    root = challenge(tmp_path / "a", "isic2017", with_test=False)
    with pytest.raises(DataError, match=r"missing folder .*ISIC-2017_Test_v2_Data: an ISIC 2017 challenge root "
                                        r"holds ISIC-2017_Training_Data/ and ISIC-2017_Training_Part1_GroundTruth/ "
                                        r"\(and ISIC-2017_Validation_Data/ .* for val, ISIC-2017_Test_v2_Data/"):
        make_dataset("isic2017", "test", str(root), size=32)
    with pytest.raises(DataError, match=r"^isic2018 reads the ISIC 2018 challenge's folders .*: pass root=DIR "
                                        r"holding them$"):
        make_dataset("isic2018", "train", str(root), size=32)


def test_train_and_evaluate_on_isic2017_folders_from_the_command_line(tmp_path, capsys):
    root = challenge(tmp_path / "data", "isic2017")
    out = tmp_path / "run"
    assert main(["train", "--data", "isic2017", "--data-root", str(root), "--model", "unet", "--base-channels", "4",
                 "--size", "32", "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--out", str(out)]) == 0
    assert main(["evaluate", "--checkpoint", str(out / "best.pt"), "--data", "isic2017", "--data-root", str(root),
                 "--split", "test", "--device", "cpu"]) == 0
    assert "2 images of isic2017 test, scored at the ground truth's resolution" in capsys.readouterr().out
