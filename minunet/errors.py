"""The four kinds of user error, and the one way their messages are flattened into one line.

The command line turns each of them into one line on stderr and exit code 2 (never a traceback):
  DataError        the user's data: a missing folder, an unreadable image, a mask of the wrong size, ...
  CheckpointError  a checkpoint or encoder-weights file that cannot be used, or cannot be written
  SettingError     a setting that cannot work here: no CUDA GPU, a batch larger than the data
  TrainingError    a run that cannot go on: a non-finite loss, an --out that already holds another run
"""


class DataError(Exception):
    """A problem with the user's data (a missing folder or file, a broken image, ...), in one line."""


class CheckpointError(Exception):
    """A checkpoint that cannot be used (missing, truncated, unsafe, or not minunet's), in one line."""


class SettingError(ValueError):
    """A setting that cannot work here (a device that is not present, a batch larger than the data), in one
    line."""


class TrainingError(Exception):
    """Training cannot go on (for example, the loss is no longer a finite number), in one line."""


def one_line(err, limit=None):
    """The text of `err` (an exception or a string) on one line, white space folded, cut at `limit` chars."""
    text = " ".join(str(err).split())
    return text if limit is None else text[:limit]


def out_of_memory(err):
    """Whether `err` is the allocator running out of memory (CPU or GPU)."""
    import torch  # here, not at the top: the error types above need no torch

    return isinstance(err, (MemoryError, torch.OutOfMemoryError)) or (isinstance(err, RuntimeError) and any(
        text in str(err) for text in ("can't allocate memory", "not enough memory", "out of memory")))
