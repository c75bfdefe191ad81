"""Atomic outputs: an interrupted write leaves the old output and no debris; a finished one is readable
as a plain create would make it."""

import os
import stat

import pytest

from hrtem_ood.dataio.io import atomic_path, write_json


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it after."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("is_dir", [False, True])
def test_a_failed_write_keeps_the_old_output_and_leaves_no_temporary(tmp_path, is_dir):
    out = tmp_path / "out"
    if is_dir:
        out.mkdir()
        (out / "old.txt").write_text("old")
    else:
        out.write_text("old")
    with pytest.raises(RuntimeError, match="interrupted"), atomic_path(out, is_dir=is_dir) as tmp:
        (tmp / "new.txt" if is_dir else tmp).write_text("half")
        raise RuntimeError("interrupted")
    assert (out / "old.txt" if is_dir else out).read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    if is_dir:
        assert sorted(p.name for p in out.iterdir()) == ["old.txt"]


def test_a_finished_folder_replaces_the_old_one_whole(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("stale")
    with atomic_path(out, is_dir=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700),
                                                              (0o002, 0o664, 0o775)])
def test_outputs_get_the_permissions_of_a_plain_create(tmp_path, umask, mask, file_mode, dir_mode):
    """A report or dataset on a shared file system stays readable by the group when the umask says so
    (tempfile's private 0600 / 0700 did not)."""
    umask(mask)
    write_json(tmp_path / "metrics.json", {"a": 1})
    with atomic_path(tmp_path / "dataset", is_dir=True) as tmp:
        (tmp / "images.h5").write_bytes(b"x")
    assert oct(_mode(tmp_path / "metrics.json")) == oct(file_mode)
    assert oct(_mode(tmp_path / "dataset")) == oct(dir_mode)
