"""Tests for syncammaster.render: determinism, camera files, depth against projection, metadata, inputs, resume."""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

import syncammaster.render.dataset as dataset_module
from syncammaster.cameras import CameraRig, Intrinsics
from syncammaster.cli.render import add_arguments as add_render_arguments
from syncammaster.cli.render import run as run_render
from syncammaster.render import (
    SceneSpec,
    object_poses,
    project_points,
    render_dataset,
    render_views,
    sample_cameras,
    sample_scene,
    scene_seed,
)
from syncammaster.render.rig import LOOK_AT
from syncammaster.render.world import PALETTE

from videos import assert_same_contents, folder_contents

NUM_SCENES, NUM_VIEWS, NUM_FRAMES, SIZE = 2, 3, 5, 64


def _scene_dir(out: Path, index: int) -> Path:
    return out / "train" / "procedural" / f"scene{index:04d}"


def _dataset_seed_with_one_sphere() -> int:
    """A dataset seed whose scene 0 holds a single object, a sphere (nothing can hide it from a camera)."""
    for seed in range(1000):
        objects = sample_scene(scene_seed(seed, 0)).objects
        if len(objects) == 1 and objects[0].shape == "sphere":
            return seed
    raise AssertionError("no dataset seed below 1000 gives a single sphere")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, int]:
    """A tiny dataset rendered with two worker processes: (folder, seed)."""
    out = tmp_path_factory.mktemp("procedural")
    seed = _dataset_seed_with_one_sphere()
    render_dataset(out, NUM_SCENES, NUM_VIEWS, NUM_FRAMES, SIZE, seed=seed, workers=2, progress=False)
    return out, seed


# ----------------------------------------------------------------------------------------------------------------
# Scenes and rendering
# ----------------------------------------------------------------------------------------------------------------


def test_sample_scene_is_deterministic_and_describes_the_objects():
    spec = sample_scene(7)
    assert isinstance(spec, SceneSpec)
    assert spec == sample_scene(7)
    assert sample_scene(8) != spec
    assert 1 <= len(spec.objects) <= 3 and len(spec.motions) == len(spec.objects)
    for obj in spec.objects:
        assert obj.colour in PALETTE and obj.colour in spec.caption
    assert len({obj.colour for obj in spec.objects}) == len(spec.objects)  # colours tell the objects apart
    captions = {sample_scene(seed).caption for seed in range(40)}
    assert len(captions) == 40


def test_objects_rest_on_the_floor_and_never_overlap():
    for seed in range(30):
        spec = sample_scene(seed)
        centres, _ = object_poses(spec, 9)  # (K, T, 3)
        for k, obj in enumerate(spec.objects):
            assert (centres[k, :, 2] >= obj.half_height - 1e-12).all()  # never below the floor
            for j in range(k):
                gap = np.linalg.norm(centres[k, :, :2] - centres[j, :, :2], axis=-1)
                assert (gap > obj.footprint_radius + spec.objects[j].footprint_radius).all()


@pytest.mark.parametrize("supersample", [1, 2])
def test_render_views_is_deterministic(supersample):
    spec, rig = sample_scene(3), sample_cameras(3, 2)
    videos, depth = render_views(spec, rig, NUM_FRAMES, SIZE, supersample=supersample)
    assert videos.shape == (2, NUM_FRAMES, SIZE, SIZE, 3) and videos.dtype == np.uint8
    assert depth.shape == (2, NUM_FRAMES, SIZE, SIZE) and depth.dtype == np.float32
    again = render_views(spec, rig, NUM_FRAMES, SIZE, supersample=supersample)
    np.testing.assert_array_equal(videos, again[0])
    np.testing.assert_array_equal(depth, again[1])
    other = render_views(sample_scene(4), sample_cameras(4, 2), NUM_FRAMES, SIZE, supersample=supersample)
    assert not np.array_equal(videos, other[0])
    assert (depth > 0).all()  # in front of every camera, inf for the sky


def test_sample_cameras_look_at_the_subject_from_a_hemisphere():
    rig = sample_cameras(5, 10, size=64)
    assert rig.is_static and rig.num_views == 10 and rig.intrinsics == Intrinsics.training(64, 64)
    centres, axes = rig.c2w[:, :3, 3], rig.c2w[:, :3, 2]  # (V, 3): camera centres and optical axes
    to_subject = rig.subject - centres
    distance = np.linalg.norm(to_subject, axis=-1)
    np.testing.assert_allclose(np.sum(axes * to_subject, axis=-1), distance, rtol=1e-12)  # looking at it
    assert ((distance > 1.2) & (distance < 2.05)).all()  # ~2.5 to 4 m in training units (2 m each)
    elevation = np.degrees(np.arcsin(-to_subject[:, 2] / distance))
    assert ((elevation >= -1e-9) & (elevation <= 40 + 1e-9)).all()
    # The image's up (-y) has no roll: the camera x axis is horizontal.
    np.testing.assert_allclose(rig.c2w[:, 2, 0], 0.0, atol=1e-12)
    np.testing.assert_array_equal(rig.c2w, sample_cameras(5, 10).c2w)


def test_project_points_inverts_the_pixel_rays():
    rig = sample_cameras(2, 3)
    intrinsics = Intrinsics.training(48, 48)
    pixels, depth = project_points(rig, intrinsics, np.array(rig.subject)[None])
    np.testing.assert_allclose(pixels, 24.0, atol=1e-9)  # the subject is on every optical axis: the image centre
    np.testing.assert_allclose(depth[:, 0], np.linalg.norm(rig.c2w[:, :3, 3] - rig.subject, axis=-1))


# ----------------------------------------------------------------------------------------------------------------
# The written dataset
# ----------------------------------------------------------------------------------------------------------------


def test_written_cameras_read_back_as_the_rendered_ones(dataset):
    out, seed = dataset
    for index in range(NUM_SCENES):
        scene_dir = _scene_dir(out, index)
        rendered = sample_cameras(scene_seed(seed, index), NUM_VIEWS, size=SIZE)
        written = CameraRig.from_syncamvideo_json(scene_dir / "cameras" / "camera_extrinsics.json")
        assert written.is_static and written.names == rendered.names == ["cam01", "cam02", "cam03"]
        np.testing.assert_allclose(written.c2w, rendered.c2w, rtol=0, atol=1e-9)
        assert Intrinsics.from_json(scene_dir / "cameras" / "intrinsics.json") == Intrinsics.training(SIZE, SIZE)
        raw = json.loads((scene_dir / "cameras" / "camera_extrinsics.json").read_text())
        assert sorted(raw) == sorted(f"frame{t}" for t in range(NUM_FRAMES))  # one entry per video frame


def test_depth_files_hold_camera_z(dataset):
    out, _ = dataset
    with np.load(_scene_dir(out, 1) / "depth" / "cam02.npz") as npz:
        assert list(npz.keys()) == ["depth"]
        depth = npz["depth"]
    assert depth.shape == (NUM_FRAMES, SIZE, SIZE) and depth.dtype == np.float32
    finite = depth[np.isfinite(depth)]
    assert finite.size > 0 and (finite > 0).all()
    assert (np.isinf(depth) | np.isfinite(depth)).all() and not np.isnan(depth).any()


def test_sphere_surface_points_land_on_their_written_depth(dataset):
    """Cameras, intrinsics and depth maps as written agree with the scene geometry (the conventions, end to end).

    Scene 0 holds one sphere. For every frame and every two cameras, the point of the sphere facing halfway between
    them is seen by both; projected with the written cameras and intrinsics, it lands on a pixel whose written depth
    is its camera z.
    """
    out, seed = dataset
    scene_dir = _scene_dir(out, 0)
    spec = sample_scene(scene_seed(seed, 0))
    (sphere,) = spec.objects
    centres, _ = object_poses(spec, NUM_FRAMES)  # (1, T, 3)
    rig = CameraRig.from_syncamvideo_json(scene_dir / "cameras" / "camera_extrinsics.json")
    intrinsics = Intrinsics.from_json(scene_dir / "cameras" / "intrinsics.json")
    depth_maps = [np.load(scene_dir / "depth" / f"{name}.npz")["depth"] for name in rig.names]  # V x (T, S, S)
    checked = 0
    for frame in range(NUM_FRAMES):
        centre = centres[0, frame]
        toward = rig.c2w[:, :3, 3] - centre
        toward /= np.linalg.norm(toward, axis=-1, keepdims=True)  # (V, 3) unit directions to the cameras
        for v in range(rig.num_views):
            for w in range(v, rig.num_views):
                if toward[v] @ toward[w] < math.cos(math.radians(100)):
                    continue  # too far apart: no point of the sphere is clearly seen by both
                halfway = (toward[v] + toward[w]) / np.linalg.norm(toward[v] + toward[w])
                point = centre + sphere.radius * halfway
                pixels, z = project_points(rig, intrinsics, point[None])  # (V, 1, 2), (V, 1)
                for view in (v, w):
                    column, row = np.floor(pixels[view, 0]).astype(int)
                    assert 0 <= row < SIZE and 0 <= column < SIZE
                    # The pixel centre is within half a pixel of the point: 2 % covers the sphere's slope there.
                    assert depth_maps[view][frame, row, column] == pytest.approx(z[view, 0], rel=0.02)
                    checked += 1
    assert checked >= 2 * NUM_FRAMES * rig.num_views


def test_written_depth_is_the_sphere_hit_of_each_pixel_centre_ray(dataset):
    """Per pixel: the ray through the pixel centre (j + 0.5, i + 0.5), built from the written camera files, hits the
    sphere exactly where the written depth map says (a half-pixel or axis mistake moves the silhouette)."""
    out, seed = dataset
    scene_dir = _scene_dir(out, 0)
    spec = sample_scene(scene_seed(seed, 0))
    centres, _ = object_poses(spec, NUM_FRAMES)  # (1, T, 3)
    radius = spec.objects[0].radius
    rig = CameraRig.from_syncamvideo_json(scene_dir / "cameras" / "camera_extrinsics.json")
    intrinsics = Intrinsics.from_json(scene_dir / "cameras" / "intrinsics.json")
    rows, columns = np.mgrid[0:SIZE, 0:SIZE] + 0.5  # pixel centres, (S, S) each
    rays_cam = np.stack(
        [(columns - intrinsics.cx) / intrinsics.fx, (rows - intrinsics.cy) / intrinsics.fy, np.ones_like(rows)], -1
    )  # (S, S, 3): camera z = 1, so the ray parameter is the camera z
    hits = 0
    for v, name in enumerate(rig.names):
        depth = np.load(scene_dir / "depth" / f"{name}.npz")["depth"]
        rays = rays_cam @ rig.c2w[v, :3, :3].T  # (S, S, 3) world directions
        for frame in (0, NUM_FRAMES - 1):
            offset = rig.c2w[v, :3, 3] - centres[0, frame]
            a, b = np.sum(rays * rays, -1), rays @ offset
            discriminant = b * b - a * (offset @ offset - radius**2)
            on_sphere = discriminant > 1e-3 * a * radius**2  # not grazing the silhouette
            z = (-b[on_sphere] - np.sqrt(discriminant[on_sphere])) / a[on_sphere]
            np.testing.assert_allclose(depth[frame][on_sphere], z, rtol=1e-4)
            hits += int(on_sphere.sum())
    assert hits > 50


def test_metadata_lists_every_video_with_its_caption(dataset):
    out, seed = dataset
    with open(out / "metadata.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["file_name", "text"]
    assert len(rows) == 1 + NUM_SCENES * NUM_VIEWS
    for index in range(NUM_SCENES):
        caption = (_scene_dir(out, index) / "prompt.txt").read_text(encoding="utf-8").strip()
        assert caption == sample_scene(scene_seed(seed, index)).caption
        scene_rows = rows[1 + index * NUM_VIEWS : 1 + (index + 1) * NUM_VIEWS]
        assert [row[0] for row in scene_rows] == [
            f"procedural/scene{index:04d}/videos/cam{v + 1:02d}.mp4" for v in range(NUM_VIEWS)
        ]
        assert all(row[1] == caption for row in scene_rows)
        for file_name, _ in scene_rows:
            assert (out / "train" / file_name).is_file()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_videos_decode_to_the_rendered_frames(dataset):
    from syncammaster.scene import read_video

    out, seed = dataset
    spec = sample_scene(scene_seed(seed, 1))
    rig = sample_cameras(scene_seed(seed, 1), NUM_VIEWS, size=SIZE)
    videos, _ = render_views(spec, rig, NUM_FRAMES, SIZE)
    decoded = read_video(_scene_dir(out, 1) / "videos" / "cam03.mp4")
    assert decoded.shape == videos[2].shape
    assert np.abs(decoded.astype(int) - videos[2]).mean() < 6  # lossy H.264 at high quality


# ----------------------------------------------------------------------------------------------------------------
# Inputs, command line and resuming
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_frames": 16}, r"4k\+1.*got 16; use 13 or 17"),
        ({"size": 100}, r"multiple of 16, got 100; use 96 or 112"),
        ({"size": 0}, r"multiple of 16, got 0; use 16"),
        ({"num_views": 0}, r"number of cameras must be a positive integer, got 0"),
        ({"num_scenes": 0}, r"number of scenes must be a positive integer, got 0"),
        ({"seed": -1}, r"seed must be a non-negative integer, got -1"),
        ({"workers": 0}, r"workers must be a positive integer, got 0"),
    ],
)
def test_bad_settings_raise_one_line_value_errors(tmp_path, change, message):
    settings = dict(num_scenes=1, num_views=2, num_frames=5, size=32, seed=0, workers=1, progress=False)
    settings.update(change)
    with pytest.raises(ValueError, match=message) as error:
        render_dataset(tmp_path / "out", **settings)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()  # nothing written


def test_command_line_flags(tmp_path, capsys):
    parser = add_render_arguments(argparse.ArgumentParser())
    out = tmp_path / "out"
    args = parser.parse_args(
        ["--scenes", "1", "--cameras", "2", "--frames", "5", "--size", "16", "--seed", "3", "--out", str(out)]
        + ["--workers", "1"]
    )
    assert run_render(args) == out
    assert "wrote 1 scenes" in capsys.readouterr().out
    assert sorted(p.name for p in (_scene_dir(out, 0) / "videos").iterdir()) == ["cam01.mp4", "cam02.mp4"]
    with pytest.raises(ValueError, match="4k"):
        run_render(parser.parse_args(["--frames", "6", "--out", str(out)]))


def test_resume_skips_complete_scenes_and_repairs_partial_ones(tmp_path, monkeypatch):
    out = tmp_path / "out"
    settings = dict(num_scenes=2, num_views=2, num_frames=5, size=16, seed=11, workers=1, progress=False)
    render_dataset(out, **settings)
    first = folder_contents(out)

    rendered: list[int] = []
    render_scene = dataset_module._render_scene

    def counting(job):
        rendered.append(job.settings["scene"])
        return render_scene(job)

    monkeypatch.setattr(dataset_module, "_render_scene", counting)
    render_dataset(out, **settings)
    assert rendered == []  # everything was complete

    # An interrupted scene (some files missing, no completion marker) is rendered again, to the same files.
    (_scene_dir(out, 1) / "render.json").unlink()
    (_scene_dir(out, 1) / "videos" / "cam02.mp4").unlink()
    render_dataset(out, **settings)
    assert rendered == [1]
    assert_same_contents(first, folder_contents(out))

    # A folder rendered with other settings is not mixed with new scenes.
    with pytest.raises(ValueError, match="other settings"):
        render_dataset(out, **{**settings, "size": 32})


# ----------------------------------------------------------------------------------------------------------------
# A given rig
# ----------------------------------------------------------------------------------------------------------------

# The SynCamVideo validation cameras, as shipped in the package (the dataset's val/basic camera file).
SYNCAMVIDEO_VAL = Path(__file__).parents[2] / "src" / "syncammaster" / "presets" / "syncamvideo_val_extrinsics.json"


@pytest.mark.parametrize("source", ["arc", "dolly", "file"])
def test_a_given_rig_films_every_scene_looking_at_its_centre(tmp_path, capsys, source):
    spec = str(SYNCAMVIDEO_VAL) if source == "file" else source
    rig = CameraRig.load(spec, num_views=3)
    parser = add_render_arguments(argparse.ArgumentParser())
    out = tmp_path / "out"
    args = parser.parse_args(["--rig", spec, "--views", "3", "--scenes", "2", "--frames", "5", "--size", "32",
                              "--seed", "3", "--out", str(out), "--workers", "1", "--quiet"])
    run_render(args)
    for index in range(2):
        scene = dataset_module.Scene.read(_scene_dir(out, index))
        assert scene.rig.names == ["cam01", "cam02", "cam03"]
        # The same cameras relative to each other (the model's camera input), only moved.
        np.testing.assert_allclose(scene.rig.embedding(5), rig.embedding(5), atol=1e-5)
        if source != "dolly":  # cameras whose axes meet look at the scene's centre
            pixels, depth = project_points(scene.rig, scene.intrinsics, [LOOK_AT])
            np.testing.assert_allclose(pixels[:, 0], 16.0, atol=0.05)
            assert (depth > 0).all()
    # The two scenes differ (their worlds), the cameras do not.
    first, second = (dataset_module.Scene.read(_scene_dir(out, i)) for i in range(2))
    np.testing.assert_allclose(first.rig.c2w, second.rig.c2w)
    assert np.abs(first.videos[0].astype(int) - second.videos[0].astype(int)).mean() > 5


def test_a_given_rig_refuses_conflicting_flags(tmp_path):
    parser = add_render_arguments(argparse.ArgumentParser())
    base = ["--scenes", "1", "--frames", "5", "--size", "16", "--out", str(tmp_path / "out")]
    with pytest.raises(ValueError, match="not both"):
        run_render(parser.parse_args([*base, "--rig", "arc", "--cameras", "3"]))
    with pytest.raises(ValueError, match="--views picks cameras of --rig"):
        run_render(parser.parse_args([*base, "--views", "3"]))
    with pytest.raises(ValueError, match="neither a camera preset"):
        run_render(parser.parse_args([*base, "--rig", str(tmp_path / "missing.json")]))
    assert not (tmp_path / "out").exists()
