"""zoo.files: writes that are whole or nothing, a full disk or a read-only folder as one error."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path

import pytest

from tests.test_cli import run_main
from zoo.errors import ZooError
from zoo.files import DiskError, atomic_write, check_writable, staged, write_json_atomic

NO_SPACE = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _refuse_new_files(monkeypatch: pytest.MonkeyPatch, folder: Path, code: int) -> None:
    """New files in ``folder`` fail with ``code`` (a full disk, a read-only file system)."""
    mkstemp = tempfile.mkstemp

    def refusing(*args, **kwargs):
        if Path(kwargs.get("dir") or ".").absolute() == folder.absolute():
            raise OSError(code, os.strerror(code), str(folder / "x.tmp"))
        return mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refusing)


def make_read_only(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``folder``, in which no file can be made from now on: chmod 0o555, and where that does not
    stop this user (root), new files refused as on a read-only file system. Undo: chmod 0o755."""
    folder.mkdir(exist_ok=True)
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):
        _refuse_new_files(monkeypatch, folder, errno.EROFS)
    return folder


@pytest.fixture
def read_only_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = make_read_only(tmp_path / "ro", monkeypatch)
    yield folder
    folder.chmod(0o755)


def test_a_full_disk_mid_write_is_one_error_naming_the_folder_and_leaves_the_old_file(tmp_path: Path) -> None:
    # Lightning's checkpoint write was a copy into place: a full disk left a truncated file
    path = tmp_path / "last.ckpt"
    path.write_bytes(b"the previous checkpoint")

    def write(handle) -> None:
        handle.write(b"half of a new")
        raise NO_SPACE

    with pytest.raises(DiskError) as caught:
        atomic_write(path, write, binary=True)
    assert str(caught.value) == (
        f"cannot write {path}: the disk holding {tmp_path} is full (no space left on device); free some "
        "space there, or write elsewhere."
    )
    assert caught.value.keep_run and isinstance(caught.value, ZooError)
    assert path.read_bytes() == b"the previous checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no partial file


def test_staged_makes_the_folder_when_asked_and_names_a_copys_target(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints" / "best.ckpt"
    full = rf"cannot write {path}: the disk holding {path.parent} is full"
    with pytest.raises(DiskError, match=full), staged(path, make_folder=True) as tmp:
        # shutil.move across file systems: the error names the source and the target, the temporary file
        raise OSError(errno.ENOSPC, "No space left on device", "/tmp/tmpabc", None, str(tmp))
    assert list(path.parent.iterdir()) == []


def test_run_json_is_rewritten_in_place_when_the_disk_has_no_room_for_a_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run.json"
    write_json_atomic(path, {"status": "running"})
    _refuse_new_files(monkeypatch, tmp_path, errno.ENOSPC)
    with pytest.raises(DiskError, match="is full"):  # not asked for: whole or not at all
        write_json_atomic(path, {"status": "failed"})
    assert json.loads(path.read_text()) == {"status": "running"}
    write_json_atomic(path, {"status": "failed", "error": "DiskError: ..."}, in_place_when_full=True)
    assert json.loads(path.read_text()) == {"status": "failed", "error": "DiskError: ..."}
    # more than the file's blocks hold would need new space: refused, the file left as it was
    with pytest.raises(DiskError):
        write_json_atomic(path, {"status": "x" * 100_000}, in_place_when_full=True)
    assert json.loads(path.read_text())["status"] == "failed"


def test_check_writable_names_the_working_folder_it_cannot_write(
    read_only_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(read_only_folder)
    with pytest.raises(ZooError, match=rf"^--output: cannot write in {read_only_folder} \(.+\)\.$"):
        check_writable("curves.png", "--output", "curves.png")
    # a folder still to make is tried in its nearest existing parent
    with pytest.raises(ZooError, match=rf"^--output: cannot write in {read_only_folder} "):
        check_writable("new/curves.png", "--output", "curves.png", make_folder=True)


def test_recipes_copy_into_a_read_only_folder_is_one_error(
    read_only_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(read_only_folder)
    code, out, err = run_main(["recipes", "copy", "mlp_digits", "m.yaml"], capsys)
    assert code == 2 and out == "", err
    assert err.startswith(f"zoo: error: copy to m.yaml: cannot write in {read_only_folder} (")
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert list(read_only_folder.iterdir()) == []
