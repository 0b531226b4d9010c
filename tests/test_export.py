"""Tests for ``syncammaster export --format nerfstudio``: the cameras as nerfstudio reads them agree with the render's
depth, the images are the scene's frames, and bad input leaves nothing behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from syncammaster.cameras import CameraRig, Intrinsics
from syncammaster.cli import main
from syncammaster.export import opencv_to_nerfstudio_c2w
from syncammaster.render import project_points
from syncammaster.scene import Scene

NUM_VIEWS, NUM_FRAMES, SIZE = 3, 5, 48


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    """A rendered scene with depth and its nerfstudio export: (scene folder, export folder)."""
    root = tmp_path_factory.mktemp("export")
    argv = ["render", "--scenes", "1", "--cameras", str(NUM_VIEWS), "--frames", str(NUM_FRAMES), "--size", str(SIZE),
            "--seed", "3", "--workers", "1", "--quiet", "--out", str(root / "rendered")]
    assert main(argv) == 0
    scene_dir = root / "rendered" / "train" / "procedural" / "scene0000"
    assert main(["export", str(scene_dir), "--format", "nerfstudio", "--out", str(root / "ns")]) == 0
    return scene_dir, root / "ns"


def _frames_by_camera(transforms: dict) -> dict[tuple[str, int], dict]:
    return {(frame["camera"], frame["frame_index"]): frame for frame in transforms["frames"]}


def test_transforms_json_has_nerfstudio_keys_and_the_scene_frames(exported):
    scene_dir, out = exported
    transforms = json.loads((out / "transforms.json").read_text())
    scene = Scene.read(scene_dir)
    intrinsics = Intrinsics.from_json(scene_dir / "cameras" / "intrinsics.json")
    # One camera model for every image: nerfstudio's parser reads these top-level keys as the "fixed" intrinsics.
    assert transforms["camera_model"] == "PINHOLE"
    assert (transforms["w"], transforms["h"]) == (SIZE, SIZE)
    assert [transforms[k] for k in ("fl_x", "fl_y", "cx", "cy")] == [
        intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy
    ]
    frames = _frames_by_camera(transforms)
    assert len(transforms["frames"]) == len(frames) == NUM_VIEWS * NUM_FRAMES
    file_names = [Path(frame["file_path"]).name for frame in transforms["frames"]]
    assert len(set(file_names)) == len(file_names)  # the parser's downscaled copies keep only the file name
    for v, name in enumerate(scene.rig.names):
        for t in range(NUM_FRAMES):
            frame = frames[name, t]
            assert frame["time"] == pytest.approx(t / (NUM_FRAMES - 1))
            image = np.asarray(Image.open(out / frame["file_path"]))
            np.testing.assert_array_equal(image, scene.videos[v][t])  # PNG: the decoded frame, unchanged
            c2w = np.array(frame["transform_matrix"])
            assert c2w.shape == (4, 4)
            np.testing.assert_allclose(c2w[3], [0, 0, 0, 1])
            assert np.linalg.det(c2w[:3, :3]) == pytest.approx(1.0)  # a proper rotation in a right-handed world


def _lift_opengl(frame: dict, transforms: dict, pixels: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """World points (N, 3) of pixel positions (N, 2) (x = column, y = row) at camera depth (N,), using the exported
    file alone, in nerfstudio's convention: OpenGL camera axes (x right, y up, looking along -z)."""
    c2w = np.array(frame["transform_matrix"])
    x = (pixels[:, 0] - transforms["cx"]) / transforms["fl_x"]
    y = -(pixels[:, 1] - transforms["cy"]) / transforms["fl_y"]  # image rows grow downwards, camera y upwards
    points_cam = np.stack([x, y, -np.ones_like(x)], -1) * depth[:, None]  # (N, 3), in front: z < 0
    return points_cam @ c2w[:3, :3].T + c2w[:3, 3]


def _project_opengl(frame: dict, transforms: dict, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pixels (N, 2), depth (N,)) of world points in an exported camera, nerfstudio's convention."""
    w2c = np.linalg.inv(np.array(frame["transform_matrix"]))
    points_cam = points @ w2c[:3, :3].T + w2c[:3, 3]  # (N, 3)
    depth = -points_cam[:, 2]
    pixels = np.stack(
        [
            transforms["cx"] + transforms["fl_x"] * points_cam[:, 0] / depth,
            transforms["cy"] - transforms["fl_y"] * points_cam[:, 1] / depth,
        ],
        -1,
    )
    return pixels, depth


def test_a_pixel_lifted_in_one_exported_camera_lands_on_the_render_depth_of_another(exported):
    """Every surface pixel of cam01, lifted with its depth and the exported cam01 and projected with the exported
    cam02/cam03 (transforms.json alone), lands where the scene's own OpenCV cameras put it, and, where that camera
    sees the same surface, on a pixel whose rendered depth is the projected depth."""
    scene_dir, out = exported
    transforms = json.loads((out / "transforms.json").read_text())
    frames = _frames_by_camera(transforms)
    rig = CameraRig.from_syncamvideo_json(scene_dir / "cameras" / "camera_extrinsics.json")
    intrinsics = Intrinsics.from_json(scene_dir / "cameras" / "intrinsics.json")
    depth = {name: np.load(scene_dir / "depth" / f"{name}.npz")["depth"] for name in rig.names}  # (T, S, S) each
    rows, columns = np.mgrid[0:SIZE, 0:SIZE]
    agreeing = checked = 0
    for t in (0, NUM_FRAMES - 1):
        seen = np.isfinite(depth["cam01"][t])  # (S, S): pixels that hit a surface
        pixels = np.stack([columns[seen], rows[seen]], -1) + 0.5  # (N, 2) pixel centres, x = column
        points = _lift_opengl(frames["cam01", t], transforms, pixels, depth["cam01"][t][seen])  # (N, 3)
        # The same pixels lifted with the scene's OpenCV cameras, then moved into the exported world frame.
        x = (pixels[:, 0] - intrinsics.cx) / intrinsics.fx
        y = (pixels[:, 1] - intrinsics.cy) / intrinsics.fy
        points_scene = (np.stack([x, y, np.ones_like(x)], -1) * depth["cam01"][t][seen][:, None]) @ rig.c2w[
            0, :3, :3
        ].T + rig.c2w[0, :3, 3]
        scene_pixels, scene_depth = project_points(rig, intrinsics, points_scene)  # (V, N, 2), (V, N)
        for v, name in enumerate(rig.names[1:], start=1):
            projected, z = _project_opengl(frames[name, t], transforms, points)
            np.testing.assert_allclose(projected, scene_pixels[v], atol=1e-6)
            np.testing.assert_allclose(z, scene_depth[v], rtol=1e-9)
            inside = (z > 0) & (projected >= 0).all(-1) & (projected < SIZE).all(-1)
            column, row = np.floor(projected[inside]).astype(int).T
            rendered = depth[name][t][row, column]
            # Within 3 %: the point is up to half a pixel from that pixel's centre; occluded points lie behind.
            agreeing += int((np.abs(rendered - z[inside]) < 0.03 * z[inside]).sum())
            checked += int(inside.sum())
    assert checked > 500
    assert agreeing > 0.7 * checked, f"{agreeing} of {checked} reprojected pixels agree with the rendered depth"


def test_opengl_conversion_flips_the_camera_y_and_z_axes():
    rig = CameraRig.preset("arc", num_views=2)
    converted = opencv_to_nerfstudio_c2w(rig.c2w)  # (V, 4, 4)
    subject = np.append(rig.subject * [1, -1, 1], 1.0)  # the exported world negates UE's Y (left-handed -> right)
    for c2w in converted:
        to_subject = np.linalg.inv(c2w) @ subject  # camera coordinates, OpenGL axes
        assert to_subject[2] < 0 and abs(to_subject[0]) < 1e-9 and abs(to_subject[1]) < 1e-9  # straight ahead, -z
        assert np.dot(c2w[:3, 1], [0, 0, 1]) > 0.99  # camera y is the world's up (UE Z) for a level camera


def test_intrinsics_come_from_the_scene_file_else_the_training_formula(exported, tmp_path):
    scene_dir, _ = exported
    copy = tmp_path / "scene"
    shutil.copytree(scene_dir, copy)
    Intrinsics(SIZE, SIZE, 50.0, 51.0, 23.0, 25.0).to_json(copy / "cameras" / "intrinsics.json")
    assert main(["export", str(copy), "--out", str(tmp_path / "ns")]) == 0
    transforms = json.loads((tmp_path / "ns" / "transforms.json").read_text())
    assert [transforms[k] for k in ("fl_x", "fl_y", "cx", "cy")] == [50.0, 51.0, 23.0, 25.0]

    (copy / "cameras" / "intrinsics.json").unlink()
    assert main(["export", str(copy), "--out", str(tmp_path / "ns_training")]) == 0
    transforms = json.loads((tmp_path / "ns_training" / "transforms.json").read_text())
    training = Intrinsics.training(SIZE, SIZE)
    assert [transforms[k] for k in ("fl_x", "fl_y", "cx", "cy")] == [training.fx, training.fy, training.cx, training.cy]


def test_export_refuses_a_folder_that_is_not_a_scene(tmp_path, capsys):
    (tmp_path / "not_a_scene").mkdir()
    code, _, err = run(["export", str(tmp_path / "not_a_scene"), "--out", str(tmp_path / "ns")], capsys)
    assert code == 1 and err.count("\n") == 1 and "camera_extrinsics.json" in err
    assert not (tmp_path / "ns").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["not_a_scene"]  # no half-written staging folder left


def test_export_never_replaces_existing_files(exported, tmp_path, capsys):
    scene_dir, _ = exported
    out = tmp_path / "ns"
    out.mkdir()
    (out / "transforms.json").write_text("mine\n")
    code, _, err = run(["export", str(scene_dir), "--out", str(out)], capsys)
    assert code == 1 and err.count("\n") == 1 and "not an empty folder" in err
    assert [p.name for p in out.iterdir()] == ["transforms.json"]
    assert (out / "transforms.json").read_text() == "mine\n"
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(scene_dir), "--format", "colmap", "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
