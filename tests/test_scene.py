"""Tests for syncammaster.scene: video I/O, tiling, and all-or-nothing scene folders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import syncammaster.scene as scene_module
from syncammaster.cameras import CameraRig, Intrinsics
from syncammaster.scene import Scene, SceneError, tile_videos
from syncammaster.video import read_video

NUM_FRAMES, HEIGHT, WIDTH = 5, 32, 48  # non-square on purpose


def _smooth_video(seed: int, num_frames: int = NUM_FRAMES, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """(T, H, W, 3) uint8 smooth colour gradients that move over time (easy for a lossy codec)."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    t, y, x = np.meshgrid(np.arange(num_frames), np.arange(height), np.arange(width), indexing="ij")
    channels = [128 + 80 * np.sin(x / width * 1.2 + y / height * 0.8 + 0.3 * t + p) for p in phase]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def _scene(num_views: int = 3, **kwargs) -> Scene:
    defaults = dict(
        videos=[_smooth_video(v) for v in range(num_views)],
        rig=CameraRig.preset("arc", num_views),
        intrinsics=Intrinsics.training(WIDTH, HEIGHT),
        prompt="A red fox trots across a snowy meadow.",
    )
    defaults.update(kwargs)
    return Scene(**defaults)


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".partial-" in p.name]


def test_tile_videos():
    two = [_smooth_video(v) for v in range(2)]
    grid = tile_videos(two)
    assert grid.shape == (NUM_FRAMES, HEIGHT, 2 * WIDTH, 3)
    np.testing.assert_array_equal(grid[:, :, WIDTH:], two[1])

    five = [_smooth_video(v) for v in range(5)]
    grid = tile_videos(five)
    assert grid.shape == (NUM_FRAMES, 2 * HEIGHT, 4 * WIDTH, 3)
    np.testing.assert_array_equal(grid[:, HEIGHT:, :WIDTH], five[4])  # view 4 starts the second row
    np.testing.assert_array_equal(grid[:, :HEIGHT, 3 * WIDTH :], five[3])
    assert not grid[:, HEIGHT:, WIDTH:].any()  # blank cells are black
    with pytest.raises(SceneError, match="at least one video"):
        tile_videos([])
    with pytest.raises(SceneError, match="video 1 has shape"):
        tile_videos([two[0], two[1][:, :16]])


def test_scene_round_trip(tmp_path):
    scene = _scene()
    out = scene.write(tmp_path / "scene", extra_files={"rig.png": b"\x89PNG fake", "depth/cam01.npz": b"npz"})
    assert out == tmp_path / "scene"
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [
        "cameras/camera_extrinsics.json",
        "cameras/intrinsics.json",
        "depth/cam01.npz",
        "grid.mp4",
        "prompt.txt",
        "rig.png",
        "videos/cam01.mp4",
        "videos/cam02.mp4",
        "videos/cam03.mp4",
    ]
    assert (out / "rig.png").read_bytes() == b"\x89PNG fake"
    assert _leftovers(tmp_path) == []

    again = Scene.read(out)
    assert again.rig.names == ["cam01", "cam02", "cam03"] and again.rig.is_static
    np.testing.assert_allclose(again.rig.c2w, scene.rig.c2w, atol=1e-12, rtol=0)
    assert again.intrinsics == scene.intrinsics and again.rig.intrinsics == scene.intrinsics
    assert again.prompt == scene.prompt
    assert again.fps == pytest.approx(15.0)
    assert len(again.videos) == 3
    for original, decoded in zip(scene.videos, again.videos, strict=True):
        assert decoded.shape == (NUM_FRAMES, HEIGHT, WIDTH, 3)
        assert np.abs(decoded.astype(float) - original).mean() < 3.0
    grid = read_video(out / "grid.mp4")
    assert grid.shape == (NUM_FRAMES, HEIGHT, 3 * WIDTH, 3)
    # A static rig is written once per frame, like the SynCamVideo files.
    assert '"frame4"' in (out / "cameras/camera_extrinsics.json").read_text()


def test_scene_with_per_frame_rig_and_no_optional_files(tmp_path):
    c2w = np.repeat(CameraRig.preset("orbit", 2).c2w[:, None], NUM_FRAMES, axis=1).copy()  # (2, T, 4, 4)
    c2w[:, :, 2, 3] += np.linspace(0.0, 0.2, NUM_FRAMES)  # cameras rise over time
    scene = Scene([_smooth_video(v) for v in range(2)], CameraRig(c2w), fps=10.0)
    scene.write(tmp_path / "s", grid=False)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["cameras", "videos"]
    again = Scene.read(tmp_path / "s")
    assert again.rig.num_frames == NUM_FRAMES and again.intrinsics is None and again.prompt is None
    assert again.fps == pytest.approx(10.0)
    np.testing.assert_allclose(again.rig.c2w, c2w, atol=1e-12, rtol=0)


def test_refuses_to_overwrite_and_leaves_files_untouched(tmp_path):
    out = tmp_path / "scene"
    (out / "videos").mkdir(parents=True)
    (out / "videos/cam02.mp4").write_bytes(b"precious")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SceneError, match="cam02.mp4 already exists; choose another output folder"):
        _scene().write(out)
    assert (out / "videos/cam02.mp4").read_bytes() == b"precious"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["notes.txt", "videos", "videos/cam02.mp4"]
    assert _leftovers(tmp_path) == []

    _scene().write(out, overwrite=True)
    assert read_video(out / "videos/cam02.mp4").shape == (NUM_FRAMES, HEIGHT, WIDTH, 3)
    assert (out / "notes.txt").read_text() == "mine"


def test_invalid_scene_raises_before_anything_is_written(tmp_path):
    out = tmp_path / "scene"
    videos = [_smooth_video(0), _smooth_video(1), _smooth_video(2, height=16)]
    with pytest.raises(SceneError, match="video cam03 has shape"):
        _scene(videos=videos).write(out)
    with pytest.raises(SceneError, match="2 videos but the rig has 3 cameras"):
        _scene(videos=videos[:2]).write(out)
    with pytest.raises(SceneError, match="intrinsics are for 832x480"):
        _scene(intrinsics=Intrinsics.training(832, 480)).write(out)
    per_frame = CameraRig(np.repeat(CameraRig.preset("arc", 3).c2w[:, None], 9, axis=1))
    with pytest.raises(SceneError, match="poses for 9 frames but the videos have 5"):
        _scene(rig=per_frame).write(out)
    scene = _scene()
    with pytest.raises(SceneError, match="relative path"):
        scene.write(out, extra_files={"../escape.txt": b"x"})
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_failure_mid_way_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "scene"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    real_write_video, calls = scene_module.write_video, []

    def failing_write_video(path, frames, fps=15.0):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        real_write_video(path, frames, fps)

    monkeypatch.setattr(scene_module, "write_video", failing_write_video)
    with pytest.raises(OSError, match="disk full"):
        _scene().write(out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert _leftovers(tmp_path) == []


def test_failure_while_moving_restores_everything(tmp_path, monkeypatch):
    out = tmp_path / "new" / "scene"  # neither folder exists yet
    _scene().write(tmp_path / "reference")
    real_replace, calls = os.replace, []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError("device went away")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="device went away"):
        _scene().write(out)
    assert not (tmp_path / "new").exists()
    assert _leftovers(tmp_path) == []

    # With overwrite=True, files that were replaced before the failure come back.
    monkeypatch.setattr(os, "replace", real_replace)
    existing = tmp_path / "existing"
    (existing / "videos").mkdir(parents=True)
    (existing / "videos/cam01.mp4").write_bytes(b"old cam01")
    (existing / "prompt.txt").write_text("old prompt")
    calls.clear()
    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="device went away"):
        _scene().write(existing, overwrite=True)
    monkeypatch.setattr(os, "replace", real_replace)
    assert (existing / "videos/cam01.mp4").read_bytes() == b"old cam01"
    assert (existing / "prompt.txt").read_text() == "old prompt"
    assert sorted(str(p.relative_to(existing)) for p in existing.rglob("*")) == [
        "prompt.txt",
        "videos",
        "videos/cam01.mp4",
    ]
    assert _leftovers(tmp_path) == []


def test_read_errors(tmp_path):
    with pytest.raises(SceneError, match="does not exist"):
        Scene.read(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SceneError, match="no cameras/camera_extrinsics.json"):
        Scene.read(tmp_path / "empty")
    out = _scene().write(tmp_path / "scene", grid=False)
    (out / "videos/cam02.mp4").unlink()
    with pytest.raises(SceneError, match="no video for camera cam02"):
        Scene.read(out)
    (out / "videos/cam02.mp4").write_bytes(b"garbage")
    with pytest.raises(SceneError, match="cam02.mp4"):
        Scene.read(out)


def test_read_rejects_camera_file_that_does_not_fit_the_videos(tmp_path):
    out = _scene().write(tmp_path / "scene", grid=False)
    c2w = np.repeat(CameraRig.preset("arc", 3).c2w[:, None], 3, axis=1).copy()  # (3, T=3, 4, 4)
    c2w[:, 1:, 0, 3] += 0.1  # moves: a per-frame rig
    (out / "cameras/camera_extrinsics.json").unlink()
    CameraRig(c2w).to_syncamvideo_json(out / "cameras/camera_extrinsics.json")
    with pytest.raises(SceneError, match="scene .*: the rig has poses for 3 frames but the videos have 5"):
        Scene.read(out)
