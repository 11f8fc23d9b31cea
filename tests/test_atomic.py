"""minunet.atomic: every file minunet writes is written whole or not at all, beside its name under a temporary
name no user could have chosen, readable as other new files are; a failure names the file and keeps the old one."""
import errno
import os

import pytest

from minunet import atomic
from minunet.atomic import write_atomically, write_together


def test_a_file_is_written_whole_with_the_umasks_mode_and_nothing_else_is_touched(tmp_path):
    target = tmp_path / "unet.onnx"
    mine = {tmp_path / "unet.onnx.tmp": b"a user's own file", tmp_path / "unet.onnx.md.tmp": b"a user's notes"}
    for path, data in mine.items():
        path.write_bytes(data)
    old = os.umask(0o027)
    try:
        write_atomically(str(target), b"\x08\x0afirst")
        write_atomically(str(target), "second, as text: é")  # replaces it
    finally:
        os.umask(old)
    assert target.read_text(encoding="utf-8") == "second, as text: é"
    assert oct(target.stat().st_mode & 0o777) == oct(0o640)  # 0666 less the umask, not mkstemp's 0600
    assert all(path.read_bytes() == data for path, data in mine.items())  # a user's .tmp files: never touched
    assert sorted(os.listdir(tmp_path)) == ["unet.onnx", "unet.onnx.md.tmp", "unet.onnx.tmp"]


def test_a_full_disk_names_the_file_keeps_the_old_one_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "best.pt"
    target.write_bytes(b"the previous checkpoint")

    def full(fd):  # the data are in the temporary file; the disk fills as it is flushed
        assert os.fstat(fd).st_size == len(b"the new checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as caught:
        write_atomically(str(target), b"the new checkpoint")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert target.read_bytes() == b"the previous checkpoint" and os.listdir(tmp_path) == ["best.pt"]


def test_ctrl_c_while_writing_leaves_no_temporary_file(tmp_path, monkeypatch):
    def interrupted(fd):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(str(tmp_path / "history.csv"), "epoch\n1\n")
    assert os.listdir(tmp_path) == []


def test_files_written_together_replace_all_or_none(tmp_path, monkeypatch):
    csv, html = tmp_path / "per_image.csv", tmp_path / "report.html"
    csv.write_text("the old rows")
    html.write_text("the old page")
    real = atomic._temporary_copy

    def second_fails(path, data):
        if str(path).endswith("report.html"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)
    monkeypatch.setattr(atomic, "_temporary_copy", second_fails)
    with pytest.raises(OSError) as caught:
        write_together({csv: "the new rows", html: "the new page"})
    assert caught.value.filename == html  # the one that could not be written
    assert csv.read_text() == "the old rows" and html.read_text() == "the old page"  # neither replaced
    assert sorted(os.listdir(tmp_path)) == ["per_image.csv", "report.html"]  # the first one's copy removed
    monkeypatch.undo()
    write_together({csv: "the new rows", html: "the new page"})
    assert csv.read_text() == "the new rows" and html.read_text() == "the new page"


def test_a_missing_folder_is_an_oserror_naming_the_file(tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        write_atomically(str(tmp_path / "missing" / "m.json"), "{}")
    assert caught.value.filename == str(tmp_path / "missing" / "m.json")
