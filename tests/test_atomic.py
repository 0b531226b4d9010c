import os
import stat

import pytest

from syncammaster.atomic import save_atomically, write_atomically


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_save_atomically_replaces_the_folder_with_ordinary_permissions(tmp_path, umask_022):
    target = tmp_path / "model"
    save_atomically(lambda folder: (folder / "a.txt").write_text("one"), target)
    save_atomically(lambda folder: (folder / "b.txt").write_text("two"), target)
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert _mode(target) == 0o755
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging folder left behind


def test_save_atomically_keeps_the_old_folder_when_saving_fails(tmp_path, umask_022):
    target = tmp_path / "model"
    save_atomically(lambda folder: (folder / "a.txt").write_text("one"), target)

    def broken(folder):
        (folder / "half.txt").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_atomically(broken, target)
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_write_atomically_gives_the_file_ordinary_permissions(tmp_path, umask_022):
    path = write_atomically(tmp_path / "sub" / "report.json", "{}\n")
    assert path.read_text() == "{}\n"
    assert _mode(path) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]
