"""Writing files whole or not at all: every file minunet writes (checkpoints, a run's history and curves, masks,
figures, reports, exported models and their cards) goes through `write_atomically` or `write_together`.

Each file's bytes go to a temporary file of a new, unique name in the target's folder (never a name a user could
have chosen, such as unet.onnx.tmp), made readable as any new file is (0666 less the umask), flushed to disk,
then renamed over the target. A crash, a ctrl-C or a full disk therefore never leaves half a file: the old file
stays as it was, and the temporary file is removed.
"""
import os
import tempfile


def current_umask():
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomically(path, content):
    """Write `content` (bytes, or str written as UTF-8) to the file `path`, replacing it whole or not at all.

    An OSError (a full disk, no permission, a missing folder) names `path`; the file there, if any, is then as
    it was.
    """
    write_together({path: content})


def write_together(files):
    """Write several files ({path: bytes or str}) together or not at all: every one is written to its temporary
    file before the first is renamed over its target, so a failure (a full disk) replaces none of them.

    An OSError names the file that could not be written.
    """
    written = {}  # path -> its temporary file, complete
    try:
        for path, content in files.items():
            written[path] = _temporary_copy(path, content.encode("utf-8") if isinstance(content, str) else content)
        for path, temporary in written.items():
            os.replace(temporary, path)
    except OSError as err:
        raise OSError(err.errno, err.strerror or str(err), path) from None  # the file the user knows, not ours
    finally:  # also on ctrl-C: no temporary file is left behind
        for temporary in written.values():
            if os.path.lexists(temporary):
                os.remove(temporary)


def _temporary_copy(path, data):
    """A new temporary file beside `path` holding `data`, on disk; removed again if writing it fails."""
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)),
                                         prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())  # mkstemp's file is private (0600); outputs are not
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename: a power cut cannot leave an empty file
    except BaseException:
        os.remove(temporary)
        raise
    return temporary
