"""The data: every source becomes one in-memory dataset, made by `make_dataset`.

  datasets    make_dataset, LesionDataset: the one kind of dataset every source gives
  images      reading one image or mask file as viewers show it (EXIF, 16-bit, mask values)
  masks       what a split's masks hold: notes, refusals
  folders     a pair of image and mask folders: your own data, the ISIC names
  challenges  the ISIC challenges' own folders (2016, 2017, 2018)
  npz         MedSegBench's npz files, read without NumPy
  catalog     MedSegBench's datasets by name, and DataSpec: a dataset's channels and class names
  modality    which way up a dataset's images are: the flips and turns that keep them true
  synthetic   synthetic lesions with exact masks (offline data)
To add a source: a module here that returns images and masks, and its branch in make_dataset.
"""
from ..errors import DataError
from .catalog import DataSpec
from .datasets import LesionDataset, data_names, dataset_for, item_seed, make_dataset
from .folders import IMAGE_EXTENSIONS, MASK_SUFFIX, TEST_IMAGES, TEST_MASKS, TRAIN_IMAGES, TRAIN_MASKS, split_ids
from .images import open_image, read_image, read_mask
from .npz import read_npy
from .synthetic import synthetic_lesion

__all__ = ["make_dataset", "LesionDataset", "DataSpec", "data_names", "dataset_for", "item_seed", "DataError",
           "MASK_SUFFIX", "IMAGE_EXTENSIONS", "TRAIN_IMAGES", "TRAIN_MASKS", "TEST_IMAGES", "TEST_MASKS",
           "split_ids", "synthetic_lesion", "read_npy", "open_image", "read_image", "read_mask"]
