import json
import os
import stat
import time
from pathlib import Path

import pytest

from syncammaster.atomic import (
    BACKUP_DIR,
    STALE_UNLOCKED_SECONDS,
    remove_stale_staging,
    save_atomically,
    staging_folder,
    write_atomically,
)


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


# ---------------------------------------------------------------------------------------------------------------
# Staging folders left by killed writes
# ---------------------------------------------------------------------------------------------------------------


def _killed_child(work) -> None:
    """Runs ``work`` in a forked process that kills itself (SIGKILL: no cleanup runs) where ``work`` says."""
    import multiprocessing
    import signal

    def child():
        work(lambda: os.kill(os.getpid(), signal.SIGKILL))

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
    assert process.exitcode == -signal.SIGKILL


def _hidden(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_killed_write_leaves_a_staging_folder_that_the_next_write_removes(tmp_path, umask_022):
    target = tmp_path / "model"

    def killed_in_mid_save(kill):
        def save(folder):
            (folder / "half.txt").write_text("half")
            kill()

        save_atomically(save, target)

    _killed_child(killed_in_mid_save)
    left = _hidden(tmp_path)
    assert len(left) == 2 and left[0].startswith(".model.partial-") and left[1] == left[0] + ".lock"
    assert _mode(tmp_path / left[0]) == 0o755  # a staging folder has the ordinary permissions too

    save_atomically(lambda folder: (folder / "a.txt").write_text("one"), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert (target / "a.txt").read_text() == "one"


def test_a_staging_folder_in_use_is_left_alone(tmp_path):
    with staging_folder(tmp_path / "model") as staging:
        (staging / "a.txt").write_text("one")
        assert remove_stale_staging(tmp_path) == []
        assert (staging / "a.txt").is_file()
    assert list(tmp_path.iterdir()) == []


def test_a_folder_replaced_when_the_write_was_killed_is_put_back(tmp_path, monkeypatch):
    target = tmp_path / "model"
    save_atomically(lambda folder: (folder / "a.txt").write_text("one"), target)

    def killed_between_the_two_moves(kill):
        replace = os.replace

        def replace_then_die(source, destination):
            if Path(destination) == target:  # the old folder is already aside, the new one not yet in place
                kill()
            replace(source, destination)

        monkeypatch.setattr(os, "replace", replace_then_die)
        save_atomically(lambda folder: (folder / "b.txt").write_text("two"), target)

    _killed_child(killed_between_the_two_moves)
    assert not target.exists()
    remove_stale_staging(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]


def test_files_displaced_by_a_killed_scene_write_are_put_back(tmp_path):
    scene = tmp_path / "scene"
    (scene / "videos").mkdir(parents=True)
    (scene / "videos" / "cam01.mp4").write_bytes(b"new, moved in")
    staging = tmp_path / ".scene.partial-abcd1234"
    (staging / BACKUP_DIR / "videos").mkdir(parents=True)
    (staging / BACKUP_DIR / "videos" / "cam01.mp4").write_bytes(b"old one")
    (staging / BACKUP_DIR / "videos" / "cam02.mp4").write_bytes(b"old two")  # its new file never arrived
    (tmp_path / ".scene.partial-abcd1234.lock").write_text(json.dumps({"target": str(scene)}))
    assert remove_stale_staging(tmp_path) == [staging]
    assert (scene / "videos" / "cam01.mp4").read_bytes() == b"new, moved in"
    assert (scene / "videos" / "cam02.mp4").read_bytes() == b"old two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene"]


def test_staging_folders_without_a_lock_go_only_when_old_and_clearly_a_scene_write(tmp_path):
    old_scene = tmp_path / ".scene.partial-aaaa1111"
    (old_scene / "new" / "videos").mkdir(parents=True)
    recent_scene = tmp_path / ".other.partial-bbbb2222"
    (recent_scene / "new").mkdir(parents=True)
    someone_elses = tmp_path / ".notes.partial-cccc3333"
    (someone_elses / "drafts").mkdir(parents=True)
    hour_ago = time.time() - 2 * STALE_UNLOCKED_SECONDS
    for folder in (old_scene, someone_elses):
        os.utime(folder, (hour_ago, hour_ago))
    assert remove_stale_staging(tmp_path) == [old_scene]
    assert _hidden(tmp_path) == [".notes.partial-cccc3333", ".other.partial-bbbb2222"]


def test_rendered_metadata_has_ordinary_permissions(tmp_path, umask_022):
    from syncammaster.render.dataset import METADATA_FILE, write_metadata

    write_metadata(tmp_path, num_scenes=2, num_views=2, seed=0)
    assert _mode(tmp_path / METADATA_FILE) == 0o644
    assert (tmp_path / METADATA_FILE).read_text().splitlines()[0] == "file_name,text"


def test_cached_tensors_have_ordinary_permissions(tmp_path, umask_022):
    import torch
    from safetensors.torch import load_file

    from syncammaster.data.latent_cache_files import write_entry

    write_entry(tmp_path / "a" / "latents.safetensors", {"latents": torch.ones(2, 3)}, {"caption": "x"})
    assert _mode(tmp_path / "a" / "latents.safetensors") == 0o644
    assert load_file(tmp_path / "a" / "latents.safetensors")["latents"].sum() == 6
