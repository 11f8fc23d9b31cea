"""Checks on the paths a command will write to, made before any work: a folder that is a file, a file name that
is a folder, a folder that cannot be written to. Each failure is a DataError naming the flag and the path."""
import os

from ..errors import DataError


def file_in_the_way(path):
    """`path`, or the nearest of its parents that exists, where that is a file and not a folder; else None."""
    while path and not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path if path and os.path.exists(path) and not os.path.isdir(path) else None


def must_be_a_folder(path, flag):
    """Raise DataError when `path`, or a parent of it, is a file (a missing folder is made later)."""
    blocker = file_in_the_way(path)
    if blocker:
        where = "" if blocker == path else f": {blocker}"
        raise DataError(f"{flag} {path}{where} is a file, not a folder: pass a folder (it is made if missing)")


def must_be_writable(folder, flag):
    """DataError when `folder` (made when written to) is a file or cannot be written to."""
    must_be_a_folder(folder, flag)
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing) or "."
    if not os.access(existing, os.W_OK):
        raise DataError(f"{flag} {folder} cannot be written to: pass a folder you can write to")


def must_be_a_file_name(path, flag, example, overwrite=True):
    """Make the folder of the file `path` if missing; DataError when `path` is or names a folder (exports/), or
    a parent of it is a file, or (unless overwrite) a file that exists. example: a file name to suggest (e.g.
    metrics.json)."""
    if os.path.isdir(path) or path.endswith(("/", os.sep)):
        raise DataError(f"{flag} {path} {'is' if os.path.isdir(path) else 'names'} a folder: pass a file name, "
                        f"such as {os.path.join(path, example)}")
    if not overwrite and os.path.lexists(path):
        raise DataError(f"{flag} {path} already exists: pass --overwrite to replace it, or another file name")
    blocker = file_in_the_way(os.path.dirname(path))
    if blocker:
        raise DataError(f"{flag} {path}: {blocker} is a file, not a folder: pass a file name in a folder")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def must_not_be_the_checkpoint(path, flag, checkpoint):
    """DataError when the file `path` is the checkpoint being read (the same file under any name): writing there
    would replace it, --overwrite or not."""
    if os.path.isfile(path) and os.path.isfile(checkpoint) and os.path.samefile(path, checkpoint):
        raise DataError(f"{flag} {path} is the checkpoint itself (--checkpoint {checkpoint}): writing it would "
                        f"replace the checkpoint; pass another file name")


def read_only(path):
    """Whether the file `path` exists and is read-only: no write bit in its mode (os.access alone would say
    root may write it), or not writable by this user."""
    return os.path.exists(path) and (not os.stat(path).st_mode & 0o222 or not os.access(path, os.W_OK))
