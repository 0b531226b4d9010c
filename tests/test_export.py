"""Tests for ``syncammaster export``, ``--format nerfstudio`` and ``--format dnerf``: the cameras as the readers read
them agree with the render's depth, the images are the scene's frames, and bad input leaves nothing behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from syncammaster.cameras import CameraRig, Intrinsics
from syncammaster.cli import main
from syncammaster.export import DNERF_CAMERA_DISTANCE, dnerf_world, opencv_to_nerfstudio_c2w
from syncammaster.render import project_points
from syncammaster.scene import Scene

NUM_VIEWS, NUM_FRAMES, SIZE = 3, 5, 48


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    """A rendered scene folder with depth."""
    root = tmp_path_factory.mktemp("export")
    argv = ["render", "--scenes", "1", "--cameras", str(NUM_VIEWS), "--frames", str(NUM_FRAMES), "--size", str(SIZE),
            "--seed", "3", "--workers", "1", "--quiet", "--out", str(root / "rendered")]
    assert main(argv) == 0
    return root / "rendered" / "train" / "procedural" / "scene0000"


@pytest.fixture(scope="module")
def exported(rendered, tmp_path_factory) -> tuple[Path, Path]:
    """The rendered scene and its nerfstudio export: (scene folder, export folder)."""
    out = tmp_path_factory.mktemp("ns") / "ns"
    assert main(["export", str(rendered), "--format", "nerfstudio", "--out", str(out)]) == 0
    return rendered, out


@pytest.fixture(scope="module")
def exported_dnerf(rendered, tmp_path_factory) -> tuple[Path, Path]:
    """The rendered scene and its D-NeRF export: (scene folder, export folder)."""
    out = tmp_path_factory.mktemp("dnerf") / "dnerf"
    assert main(["export", str(rendered), "--format", "dnerf", "--out", str(out)]) == 0
    return rendered, out


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
    _check_reprojection(scene_dir, transforms, _frames_by_camera(transforms), scale=1.0)


def _check_reprojection(scene_dir: Path, transforms: dict, frames: dict, scale: float) -> None:
    """Lift cam01's surface pixels with the exported cam01 (depth x ``scale``, the export's unit) and project them
    with the other exported cameras: the pixels the scene's own cameras give, and the rendered depth where seen."""
    rig = CameraRig.from_syncamvideo_json(scene_dir / "cameras" / "camera_extrinsics.json")
    intrinsics = Intrinsics.from_json(scene_dir / "cameras" / "intrinsics.json")
    depth = {name: np.load(scene_dir / "depth" / f"{name}.npz")["depth"] for name in rig.names}  # (T, S, S) each
    rows, columns = np.mgrid[0:SIZE, 0:SIZE]
    agreeing = checked = 0
    for t in (0, NUM_FRAMES - 1):
        seen = np.isfinite(depth["cam01"][t])  # (S, S): pixels that hit a surface
        pixels = np.stack([columns[seen], rows[seen]], -1) + 0.5  # (N, 2) pixel centres, x = column
        lifted_depth = scale * depth["cam01"][t][seen].astype(np.float64)  # (N,), in the export's unit
        points = _lift_opengl(frames["cam01", t], transforms, pixels, lifted_depth)  # (N, 3)
        # The same pixels lifted with the scene's OpenCV cameras, then moved into the exported world frame.
        x = (pixels[:, 0] - intrinsics.cx) / intrinsics.fx
        y = (pixels[:, 1] - intrinsics.cy) / intrinsics.fy
        points_scene = (np.stack([x, y, np.ones_like(x)], -1) * depth["cam01"][t][seen][:, None]) @ rig.c2w[
            0, :3, :3
        ].T + rig.c2w[0, :3, 3]
        scene_pixels, scene_depth = project_points(rig, intrinsics, points_scene)  # (V, N, 2), (V, N)
        for v, name in enumerate(rig.names[1:], start=1):
            projected, z = _project_opengl(frames[name, t], transforms, points)
            z = z / scale  # back to the scene's unit
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


# ---------------------------------------------------------------------- nerfstudio --frame


def test_one_time_step_exports_every_camera_at_it(rendered, tmp_path, capsys):
    assert main(["export", str(rendered), "--frame", "2", "--out", str(tmp_path / "ns")]) == 0
    assert "wrote 3 images and transforms.json (nerfstudio)" in capsys.readouterr().out
    transforms = json.loads((tmp_path / "ns" / "transforms.json").read_text())
    assert [(f["camera"], f["frame_index"]) for f in transforms["frames"]] == [(n, 2) for n in ("cam01", "cam02",
                                                                                                  "cam03")]
    assert sorted(p.name for p in (tmp_path / "ns" / "images").iterdir()) == [f"cam0{v}_00002.png" for v in (1, 2, 3)]
    code, _, err = run(["export", str(rendered), "--frame", str(NUM_FRAMES), "--out", str(tmp_path / "x")], capsys)
    assert code == 1 and f"--frame {NUM_FRAMES} is not a frame of the {NUM_FRAMES}-frame scene; give 0 to 4" in err
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------- D-NeRF


def _dnerf_reading(out: Path, split: str) -> tuple[dict, dict]:
    """A split as D-NeRF readers take it: fx = fy from camera_angle_x and the image width, the principal point at
    the image centre, each image at file_path + ".png". Returns (intrinsics as transforms.json keys, frames by
    (camera, frame index))."""
    meta = json.loads((out / f"transforms_{split}.json").read_text())
    first = Image.open(out / (meta["frames"][0]["file_path"].replace("./", "") + ".png"))
    width, height = first.size
    focal = 0.5 * width / np.tan(0.5 * meta["camera_angle_x"])
    intrinsics = {"fl_x": focal, "fl_y": focal, "cx": width / 2, "cy": height / 2}
    return intrinsics, _frames_by_camera(meta)


def test_dnerf_files_hold_every_image_with_its_time_and_hold_out_the_middle_camera(exported_dnerf):
    scene_dir, out = exported_dnerf
    scene = Scene.read(scene_dir)
    intrinsics = Intrinsics.from_json(scene_dir / "cameras" / "intrinsics.json")
    cameras = {}
    for split in ("train", "val", "test"):
        meta = json.loads((out / f"transforms_{split}.json").read_text())
        assert meta["camera_angle_x"] == pytest.approx(2 * np.arctan(SIZE / (2 * intrinsics.fx)))
        cameras[split] = sorted({frame["camera"] for frame in meta["frames"]})
        assert len(meta["frames"]) == len(cameras[split]) * NUM_FRAMES
        for frame in meta["frames"]:
            assert not frame["file_path"].endswith(".png")  # the readers add it
            image = np.asarray(Image.open(out / (frame["file_path"].replace("./", "") + ".png")))
            v, t = scene.rig.names.index(frame["camera"]), frame["frame_index"]
            np.testing.assert_array_equal(image, scene.videos[v][t])
            assert frame["time"] == pytest.approx(t / (NUM_FRAMES - 1))
    assert cameras == {"train": ["cam01", "cam03"], "val": ["cam02"], "test": ["cam02"]}
    assert len(list((out / "images").iterdir())) == NUM_VIEWS * NUM_FRAMES


def test_dnerf_world_puts_the_cameras_4_units_around_what_they_look_at(exported_dnerf):
    _, out = exported_dnerf
    frames = [f for split in ("train", "test") for f in json.loads((out / f"transforms_{split}.json").read_text())[
        "frames"]]
    c2w = np.array([frame["transform_matrix"] for frame in frames])  # (N, 4, 4)
    assert np.linalg.norm(c2w[:, :3, 3], axis=-1).mean() == pytest.approx(DNERF_CAMERA_DISTANCE)
    np.testing.assert_allclose(np.linalg.det(c2w[:, :3, :3]), 1.0)
    to_origin = -c2w[:, :3, 3] / np.linalg.norm(c2w[:, :3, 3], axis=-1, keepdims=True)
    assert ((to_origin * -c2w[:, :3, 2]).sum(-1) > 0.9).all()  # every camera looks (nearly) at the origin


@pytest.mark.parametrize(("preset", "views"), [("arc", 4), ("orbit", 4), ("el", 2), ("dolly", 3), ("arc", 1)])
def test_dnerf_world_centres_on_the_subject_the_cameras_look_at(preset, views):
    """Axes that cross meet at the presets' subject; axes on one line (a dolly, one camera) give the point 3 m in
    front of the foremost camera, which for the presets is the subject too."""
    rig = CameraRig.preset(preset, num_views=views)
    centre, scale = dnerf_world(opencv_to_nerfstudio_c2w(rig.c2w))
    np.testing.assert_allclose(centre, rig.subject * [1, -1, 1], atol=1e-4)  # the exported world negates UE's Y
    distances = np.linalg.norm(rig.c2w[:, :3, 3] - rig.subject, axis=-1)
    assert scale * distances.mean() == pytest.approx(DNERF_CAMERA_DISTANCE, rel=1e-4)  # the release's rounded poses


def test_dnerf_cameras_reproject_onto_the_render_depth(exported_dnerf):
    """As for nerfstudio's file, with the D-NeRF reading of the intrinsics and the export's scale."""
    scene_dir, out = exported_dnerf
    intrinsics, train = _dnerf_reading(out, "train")
    _, test = _dnerf_reading(out, "test")
    scale = json.loads((out / "transforms_train.json").read_text())["applied_scale"]
    _check_reprojection(scene_dir, intrinsics, {**train, **test}, scale=scale)


def test_dnerf_holdout_choice_and_refusals(rendered, tmp_path, capsys):
    assert main(["export", str(rendered), "--format", "dnerf", "--holdout", "cam03", "--out", str(tmp_path / "a")]) == 0
    test = json.loads((tmp_path / "a" / "transforms_test.json").read_text())
    assert {frame["camera"] for frame in test["frames"]} == {"cam03"}
    for extra, needle in [
        (["--holdout", "cam9"], "--holdout cam9 is not a camera of the scene; give an index 0 to 2 or a name"),
        (["--frame", "1"], "--frame is for --format nerfstudio"),
    ]:
        code, _, err = run(["export", str(rendered), "--format", "dnerf", *extra, "--out", str(tmp_path / "x")], capsys)
        assert code == 1 and err.count("\n") == 1 and needle in err, err
    # Intrinsics D-NeRF cannot hold (off-centre principal point), and a single camera (nothing to hold out).
    off_centre = tmp_path / "off_centre"
    shutil.copytree(rendered, off_centre)
    Intrinsics(SIZE, SIZE, 50.0, 50.0, 20.0, 24.0).to_json(off_centre / "cameras" / "intrinsics.json")
    code, _, err = run(["export", str(off_centre), "--format", "dnerf", "--out", str(tmp_path / "x")], capsys)
    assert code == 1 and "one field of view (fx = fy, principal point at the centre)" in err
    scene = Scene.read(rendered)
    single = Scene(scene.videos[:1], CameraRig(scene.rig.c2w[:1], scene.rig.names[:1]), scene.intrinsics)
    single.write(tmp_path / "single", grid=False)
    code, _, err = run(["export", str(tmp_path / "single"), "--format", "dnerf", "--out", str(tmp_path / "x")], capsys)
    assert code == 1 and "needs 2 or more; this scene has 1; use --format nerfstudio" in err
    assert not (tmp_path / "x").exists()
