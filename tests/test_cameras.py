"""Tests for syncammaster.cameras: the SynCamVideo file, the Unreal -> OpenCV conversion, the embedding, presets."""

from __future__ import annotations

import importlib.resources
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from syncammaster.cameras import (
    CameraError,
    CameraRig,
    Intrinsics,
    format_ue_matrix,
    list_presets,
    opencv_to_ue_c2w,
    parse_ue_matrix,
    ue_to_opencv_c2w,
)

GENERATED_PRESETS = ["arc", "elevation", "dolly", "orbit"]
RELEASED_PRESETS = ["az", "el", "dis", "syncamvideo"]


@pytest.fixture
def camera_file() -> Path:
    """The real SynCamVideo validation cameras (val/basic/cameras/camera_extrinsics.json of the dataset, 10 cameras),
    as the package ships them."""
    return Path(str(importlib.resources.files("syncammaster") / "presets" / "syncamvideo_val_extrinsics.json"))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.acos(np.clip(_unit(a) @ _unit(b), -1.0, 1.0)))


def _released_code_c2w(path: Path, camera: str, frame: int) -> np.ndarray:
    """The released SynCamMaster conversion, step by step, written independently of the package."""
    text = json.loads(path.read_text())[f"frame{frame}"][camera]
    rows = [[float(x) for x in row.strip("[] ").split()] for row in text.strip().split("] [")]
    c2w = np.array(rows).T
    c2w = c2w[:, [1, 2, 0, 3]]
    c2w[:3, 1] *= -1.0
    c2w[:3, 3] /= 200
    return c2w


def _distance_to_axis(point: np.ndarray, c2w: np.ndarray) -> tuple[float, float]:
    """(distance of ``point`` from the camera's optical axis, signed depth of ``point`` along it)."""
    centre, axis = c2w[:3, 3], _unit(c2w[:3, 2])
    offset = point - centre
    depth = float(offset @ axis)
    return float(np.linalg.norm(offset - depth * axis)), depth


# ---------------------------------------------------------------------------------------------------------------
# The real file
# ---------------------------------------------------------------------------------------------------------------


def test_file_parses_as_static_ten_camera_rig(camera_file):
    rig = CameraRig.from_syncamvideo_json(camera_file)
    assert rig.num_views == 10
    assert rig.is_static and rig.num_frames is None
    assert rig.c2w.shape == (10, 4, 4) and rig.c2w.dtype == np.float64
    assert rig.names == [f"cam{j:02d}" for j in range(1, 11)]
    # Unreal's world is left-handed: every OpenCV c2w rotation has det -1.
    np.testing.assert_allclose(np.linalg.det(rig.c2w[:, :3, :3]), -1.0, atol=1e-5)


def test_cam03_hand_computed(camera_file):
    # cam03: UE identity rotation at (12920, 1100, -570) cm.
    c2w = CameraRig.from_syncamvideo_json(camera_file).c2w[2]
    expected = np.array(
        [
            # right  down  forward  centre (UE X, Y, Z in units of 200 cm)
            [0.0, 0.0, 1.0, 64.6],
            [1.0, 0.0, 0.0, 5.5],
            [0.0, -1.0, 0.0, -2.85],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    np.testing.assert_allclose(c2w, expected, atol=1e-12)


def test_cam01_hand_computed(camera_file):
    rig = CameraRig.from_syncamvideo_json(camera_file)
    cam01, cam03 = rig.c2w[0], rig.c2w[2]
    np.testing.assert_allclose(cam01[:3, 2], [0.866025, -0.5, 0.0], atol=1e-12)  # forward
    np.testing.assert_allclose(cam01[:3, 0], [0.5, 0.866025, 0.0], atol=1e-12)  # right
    np.testing.assert_allclose(cam01[:3, 1], [0.0, 0.0, -1.0], atol=1e-12)  # down = -UE Z
    np.testing.assert_allclose(cam01[:3, 3], [64.801, 6.25, -2.85], atol=1e-12)
    assert _angle_deg(cam01[:3, 2], cam03[:3, 2]) == pytest.approx(30.0, abs=1e-4)


def test_cam09_steps_back_along_cam03_axis(camera_file):
    rig = CameraRig.from_syncamvideo_json(camera_file)
    cam03, cam09, cam10 = rig.c2w[2], rig.c2w[8], rig.c2w[9]
    np.testing.assert_array_equal(cam09[:3, :3], cam03[:3, :3])
    np.testing.assert_allclose(cam09[:3, 3], cam03[:3, 3] - 0.5 * cam03[:3, 2], atol=1e-12)  # 100 cm behind
    np.testing.assert_allclose(cam10[:3, 3], cam03[:3, 3] - 1.0 * cam03[:3, 2], atol=1e-12)  # 200 cm behind


def test_conversion_matches_released_code_for_every_camera(camera_file):
    rig = CameraRig.from_syncamvideo_json(camera_file)
    for v, name in enumerate(rig.names):
        np.testing.assert_allclose(rig.c2w[v], _released_code_c2w(camera_file, name, 0), atol=1e-12)


def test_view_zero_relative_pose_is_identity(camera_file):
    rig = CameraRig.from_syncamvideo_json(camera_file)
    rel_c2w = rig.relative_c2w(5)
    assert rel_c2w.shape == (10, 5, 4, 4)
    np.testing.assert_array_equal(rel_c2w[0], np.broadcast_to(np.eye(4), (5, 4, 4)))
    embedding = rig.embedding(9)
    assert embedding.shape == (10, 3, 12) and embedding.dtype == torch.float32
    identity_rows = torch.tensor([1.0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0])
    assert torch.equal(embedding[0], identity_rows.expand(3, 12))


def test_az_embedding_matches_released_inference(camera_file):
    """The released inference script puts its "tgt" camera first (view 0, identity) and "cond" second; for `az`
    that is cam01 then cam03, so view 1 holds inv(c2w_cam01) @ c2w_cam03 at video frames 0, 4, ..., 80."""
    embedding = CameraRig.preset("az").embedding(81)
    assert embedding.shape == (2, 21, 12) and embedding.dtype == torch.float32

    expected = []
    for frame in range(0, 81, 4):
        tgt, cond = _released_code_c2w(camera_file, "cam01", frame), _released_code_c2w(camera_file, "cam03", frame)
        rel = np.linalg.inv(tgt) @ cond
        expected.append(np.stack([np.eye(4)[:3, :4].flatten(), rel[:3, :4].flatten()]))
    expected = torch.tensor(np.stack(expected, axis=1), dtype=torch.float32)  # (2, 21, 12)
    torch.testing.assert_close(embedding, expected, atol=1e-6, rtol=0)
    # The same from the file's own cameras.
    file_rig = CameraRig.from_syncamvideo_json(camera_file).select(["cam01", "cam03"])
    torch.testing.assert_close(file_rig.embedding(81), embedding, atol=0, rtol=0)


def test_file_write_read_is_exact(camera_file, tmp_path):
    rig = CameraRig.from_syncamvideo_json(camera_file)
    out = tmp_path / "camera_extrinsics.json"
    rig.to_syncamvideo_json(out, num_frames=81)
    again = CameraRig.from_syncamvideo_json(out)
    assert again.names == rig.names and again.is_static
    np.testing.assert_allclose(again.c2w, rig.c2w, atol=1e-12, rtol=0)
    # The written strings are the file's own: Unreal values survive the trip through training units.
    assert json.loads(out.read_text()) == json.loads(camera_file.read_text())


def test_pick_cameras_from_file(camera_file):
    rig = CameraRig.from_syncamvideo_json(camera_file, cameras=["cam10", "cam09"])
    assert rig.names == ["cam10", "cam09"]
    np.testing.assert_allclose(rig.c2w[0], _released_code_c2w(camera_file, "cam10", 0), atol=1e-12)
    with pytest.raises(CameraError, match="no camera 'cam11'.*cam01"):
        CameraRig.from_syncamvideo_json(camera_file, cameras=["cam11"])


# ---------------------------------------------------------------------------------------------------------------
# Conversion and strings
# ---------------------------------------------------------------------------------------------------------------


def test_ue_opencv_conversions_are_inverse():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(6, 3, 3)))
    ue_rows = np.zeros((6, 4, 4))
    ue_rows[:, :3, :3] = q
    ue_rows[:, 3, :3] = rng.uniform(-2e4, 2e4, size=(6, 3))
    ue_rows[:, 3, 3] = 1.0
    c2w = ue_to_opencv_c2w(ue_rows)
    assert c2w.shape == (6, 4, 4)
    np.testing.assert_array_equal(c2w[:, 3], np.broadcast_to([0.0, 0.0, 0.0, 1.0], (6, 4)))
    np.testing.assert_allclose(opencv_to_ue_c2w(c2w), ue_rows, rtol=1e-15, atol=1e-11)
    np.testing.assert_allclose(ue_to_opencv_c2w(opencv_to_ue_c2w(c2w)), c2w, rtol=1e-15, atol=1e-13)
    # The conversion never modifies its input.
    before = ue_rows.copy()
    ue_to_opencv_c2w(ue_rows)
    np.testing.assert_array_equal(ue_rows, before)


def test_parse_and_format_ue_matrix():
    text = "[0.866025 -0.5 0 0] [0.5 0.866025 -0 0] [0 0 1 0] [12960.2 1250 -570 1] "
    m = parse_ue_matrix(text)
    assert m.shape == (4, 4)
    np.testing.assert_array_equal(m[3], [12960.2, 1250.0, -570.0, 1.0])
    assert format_ue_matrix(m) == text
    awkward = np.array([[0.1 + 0.2, -0.0, 1e-20, 0.0]] * 3 + [[1 / 3, 2e7, -7.25, 1.0]])
    again = parse_ue_matrix(format_ue_matrix(awkward))
    np.testing.assert_array_equal(again, awkward)
    assert "e" not in format_ue_matrix(awkward)


@pytest.mark.parametrize(
    "text",
    [
        "[1 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1]",  # short row
        "[1 0 0 0] [0 1 0 0] [0 0 1 0]",  # 3 rows
        "[1 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 x 1]",  # not a number
        "1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1",  # no brackets
        "[1 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1] extra",
    ],
)
def test_malformed_matrix_string(text):
    with pytest.raises(CameraError, match="camera cam03 at frame 5 is malformed"):
        parse_ue_matrix(text, where="camera cam03 at frame 5")


# ---------------------------------------------------------------------------------------------------------------
# Invalid input
# ---------------------------------------------------------------------------------------------------------------


def _write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


IDENTITY_UE = "[1 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1] "


def test_non_finite_value_rejected(tmp_path):
    c2w = np.tile(np.eye(4), (2, 1, 1))
    c2w[1, 0, 3] = np.nan
    with pytest.raises(CameraError, match="camera cam02 has a non-finite value"):
        CameraRig(c2w)
    path = _write_json(tmp_path / "c.json", {"frame0": {"cam01": "[1 0 0 0] [0 1 0 0] [0 0 1 0] [inf 0 0 1] "}})
    with pytest.raises(CameraError, match="camera cam01 at frame 0 in .*c.json has a non-finite value"):
        CameraRig.from_syncamvideo_json(path)


def test_non_orthonormal_rotation_rejected(tmp_path):
    c2w = np.tile(np.eye(4), (3, 2, 1, 1))  # (V=3, T=2, 4, 4)
    c2w[2, 1, :3, :3] *= 1.06
    with pytest.raises(CameraError, match=r"camera cam03 at frame 1 has a non-orthonormal rotation \(max"):
        CameraRig(c2w)
    path = _write_json(tmp_path / "c.json", {"frame0": {"cam01": "[1 0 0 0] [0 2 0 0] [0 0 1 0] [0 0 0 1] "}})
    with pytest.raises(CameraError, match="c.json: camera cam01 has a non-orthonormal rotation"):
        CameraRig.from_syncamvideo_json(path)


@pytest.mark.parametrize("shape", [(4, 4), (2, 4, 3), (2, 5, 4), (2, 1, 1, 4, 4), (2,)])
def test_wrong_matrix_shape_rejected(shape):
    with pytest.raises(CameraError, match="shape"):
        CameraRig(np.zeros(shape))


def test_zero_views_rejected():
    with pytest.raises(CameraError, match="a rig needs at least one camera"):
        CameraRig(np.zeros((0, 4, 4)))


def test_bottom_row_and_handedness_rejected():
    c2w = np.tile(np.eye(4), (2, 1, 1))
    c2w[1, 3, 0] = 0.5
    with pytest.raises(CameraError, match="camera cam02 has bottom row"):
        CameraRig(c2w)
    c2w = np.tile(np.eye(4), (2, 1, 1))
    c2w[1, 0, 0] = -1.0  # a mirror: det +1 for cam01, -1 for cam02
    with pytest.raises(CameraError, match="same handedness"):
        CameraRig(c2w)


def test_names_validated():
    c2w = np.tile(np.eye(4), (2, 1, 1))
    with pytest.raises(CameraError, match="unique"):
        CameraRig(c2w, names=["a", "a"])
    with pytest.raises(CameraError, match="2 views"):
        CameraRig(c2w, names=["a"])
    with pytest.raises(CameraError, match="file names"):
        CameraRig(c2w, names=["a", "../b"])


def test_camera_missing_in_one_frame(tmp_path):
    frames = {f"frame{t}": {"cam01": IDENTITY_UE, "cam02": IDENTITY_UE} for t in range(3)}
    del frames["frame2"]["cam02"]
    path = _write_json(tmp_path / "c.json", frames)
    with pytest.raises(CameraError, match="camera cam02 is missing in frame2 .*different frame counts"):
        CameraRig.from_syncamvideo_json(path)


def test_bad_files(tmp_path):
    not_json = tmp_path / "bad.json"
    not_json.write_text("{frame0: ")
    with pytest.raises(CameraError, match="bad.json is not valid JSON"):
        CameraRig.from_syncamvideo_json(not_json)
    for data in ([1, 2], {}, {"frame0": "x"}, {"cam01": {"frame0": IDENTITY_UE}}):
        with pytest.raises(CameraError, match="c.json"):
            CameraRig.from_syncamvideo_json(_write_json(tmp_path / "c.json", data))
    gap = _write_json(tmp_path / "gap.json", {"frame0": {"cam01": IDENTITY_UE}, "frame2": {"cam01": IDENTITY_UE}})
    with pytest.raises(CameraError, match="no frame1"):
        CameraRig.from_syncamvideo_json(gap)
    malformed = _write_json(tmp_path / "m.json", {"frame0": {"cam01": IDENTITY_UE}, "frame1": {"cam01": "[1 0 0 0]"}})
    with pytest.raises(CameraError, match="camera cam01 at frame 1 in .*m.json is malformed"):
        CameraRig.from_syncamvideo_json(malformed)
    with pytest.raises(CameraError, match="cannot read camera file"):
        CameraRig.from_syncamvideo_json(tmp_path / "missing.json")


def test_unknown_preset_lists_presets(tmp_path):
    with pytest.raises(CameraError, match="unknown camera preset 'nope'.*arc.*orbit.*camera_extrinsics.json"):
        CameraRig.preset("nope")
    for spec in ("nope", str(tmp_path / "missing.json")):
        with pytest.raises(CameraError, match="neither a camera preset .*az.*dolly.*nor an existing file"):
            CameraRig.load(spec)


@pytest.mark.parametrize("frames, hint", [(80, "use 77 or 81"), (0, "use 1"), (2, "use 1 or 5"), (82, "81 or 85")])
def test_bad_frame_count_for_embedding(frames, hint):
    rig = CameraRig.preset("arc", 2)
    with pytest.raises(CameraError, match=f"4k\\+1.*{hint}"):
        rig.embedding(frames)


def test_per_frame_rig_frame_count_must_match_video():
    c2w = np.tile(np.eye(4), (2, 5, 1, 1))  # (V=2, T=5, 4, 4)
    rig = CameraRig(c2w)
    assert not rig.is_static and rig.num_frames == 5
    assert rig.embedding(5).shape == (2, 2, 12)
    with pytest.raises(CameraError, match="poses for 5 frames but the video has 9"):
        rig.embedding(9)


# ---------------------------------------------------------------------------------------------------------------
# Rig behaviour
# ---------------------------------------------------------------------------------------------------------------


def test_3x4_input_select_and_frames():
    c2w_34 = np.tile(np.eye(4)[:3], (3, 1, 1))  # (3, 3, 4)
    c2w_34[:, 0, 3] = [0.0, 1.0, 2.0]
    rig = CameraRig(c2w_34, names=["left", "mid", "right"])
    assert rig.c2w.shape == (3, 4, 4)
    np.testing.assert_array_equal(rig.c2w[:, 3], np.broadcast_to([0.0, 0.0, 0.0, 1.0], (3, 4)))
    assert not rig.c2w.flags.writeable
    np.testing.assert_array_equal(rig.c2w_at(7), rig.c2w)
    assert rig.select(2).names == ["left", "mid"]
    assert rig.select(["right", 0]).names == ["right", "left"]
    with pytest.raises(CameraError, match="this rig has 3"):
        rig.select(4)
    with pytest.raises(CameraError, match="this rig has 3"):
        rig.select(0)
    with pytest.raises(CameraError, match="no camera named 'up'"):
        rig.select(["up"])


def test_per_frame_rig_round_trip(tmp_path):
    base = CameraRig.preset("arc", 3)
    c2w = np.repeat(base.c2w[:, None], 5, axis=1).copy()  # (3, 5, 4, 4)
    c2w[:, :, 0, 3] += np.linspace(0.0, 0.4, 5)  # every camera moves along UE X over time
    rig = CameraRig(c2w)
    np.testing.assert_array_equal(rig.c2w_at(4), c2w[:, 4])
    with pytest.raises(CameraError, match="out of range"):
        rig.c2w_at(5)
    rig.to_syncamvideo_json(tmp_path / "c.json")
    again = CameraRig.from_syncamvideo_json(tmp_path / "c.json")
    assert again.num_frames == 5
    np.testing.assert_allclose(again.c2w, rig.c2w, atol=1e-12, rtol=0)
    with pytest.raises(CameraError, match="poses for 5 frames but 3"):
        rig.to_syncamvideo_json(tmp_path / "d.json", num_frames=3)


def test_relative_pose_is_world_frame_invariant():
    rig = CameraRig.preset("orbit", 3)
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    world_change = np.eye(4)
    world_change[:3, :3], world_change[:3, 3] = q, rng.normal(size=3)
    moved = CameraRig(world_change @ rig.c2w)
    torch.testing.assert_close(moved.embedding(5), rig.embedding(5), atol=1e-6, rtol=0)


def test_summary():
    rig = CameraRig.preset("az")
    text = repr(rig)
    assert "2 views" in text and "static" in text and "baseline 0.78 units" in text and "30.0 deg" in text
    info = rig.to_dict()
    assert info["num_views"] == 2 and info["names"] == ["cam01", "cam03"]
    assert info["baseline_units"] == pytest.approx(0.7765, abs=1e-3)
    json.dumps(info)


# ---------------------------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------------------------


def test_list_presets():
    presets = list_presets()
    assert set(presets) == set(RELEASED_PRESETS + GENERATED_PRESETS)
    assert all(isinstance(d, str) and "\n" not in d for d in presets.values())
    assert CameraRig.list_presets() == presets


def test_released_presets():
    assert CameraRig.preset("az").names == ["cam01", "cam03"]
    assert CameraRig.preset("el").names == ["cam03", "cam07"]
    assert CameraRig.preset("dis").names == ["cam09", "cam10"]
    assert CameraRig.preset("syncamvideo").num_views == 10
    assert CameraRig.preset("syncamvideo", 4).names == ["cam01", "cam02", "cam03", "cam04"]
    assert CameraRig.preset("az", 1).names == ["cam01"]
    with pytest.raises(CameraError, match="preset 'az' has 2 cameras"):
        CameraRig.preset("az", 3)
    # The el pair is 20 degrees apart in elevation; the dis pair 0.5 units apart on one axis.
    el = CameraRig.preset("el").c2w
    assert _angle_deg(el[0, :3, 2], el[1, :3, 2]) == pytest.approx(20.0, abs=1e-4)
    dis = CameraRig.preset("dis").c2w
    assert np.linalg.norm(dis[0, :3, 3] - dis[1, :3, 3]) == pytest.approx(0.5, abs=1e-9)


def test_load(camera_file):
    assert CameraRig.load("dolly", 3).num_views == 3
    assert CameraRig.load(str(camera_file)).num_views == 10
    assert CameraRig.load(camera_file, num_views=2).names == ["cam01", "cam02"]


@pytest.mark.parametrize("name", GENERATED_PRESETS + RELEASED_PRESETS)
def test_every_optical_axis_passes_through_subject(name):
    rig = CameraRig.preset(name)
    assert rig.subject is not None
    np.testing.assert_allclose(rig.subject, [66.1, 5.5, -2.85], atol=1e-12)  # UE (13220, 1100, -570) cm
    for v in range(rig.num_views):
        miss, depth = _distance_to_axis(rig.subject, rig.c2w[v])
        assert miss < 1e-4, f"{name} {rig.names[v]} misses the subject by {miss}"  # the file rounds to 0.1 cm
        assert depth > 1.0  # in front of the camera


@pytest.mark.parametrize("name", GENERATED_PRESETS)
@pytest.mark.parametrize("num_views", [1, 2, 3, 5])
def test_generated_presets(name, num_views, tmp_path):
    rig = CameraRig.preset(name, num_views)
    assert rig.num_views == num_views and rig.is_static
    assert rig.names == [f"cam{j:02d}" for j in range(1, num_views + 1)]
    np.testing.assert_allclose(np.linalg.det(rig.c2w[:, :3, :3]), -1.0, atol=1e-12)  # Unreal world
    assert (rig.c2w[:, 2, 1] < 0).all()  # image "down" points down in the world (UE -Z): no camera upside down
    for v in range(num_views):
        miss, depth = _distance_to_axis(rig.subject, rig.c2w[v])
        assert miss < 1e-12
        expected_depth = 1.5 + 0.5 * v if name == "dolly" else 1.5  # 300 cm, dolly steps back 100 cm
        assert depth == pytest.approx(expected_depth, abs=1e-12)
    assert rig.embedding(5).shape == (num_views, 2, 12)
    rig.to_syncamvideo_json(tmp_path / "c.json", num_frames=3)
    again = CameraRig.from_syncamvideo_json(tmp_path / "c.json")
    assert again.is_static
    np.testing.assert_allclose(again.c2w, rig.c2w, atol=1e-12, rtol=0)


def test_generated_preset_default_and_limits():
    assert CameraRig.preset("orbit").num_views == 4
    with pytest.raises(CameraError, match="wrap past 360"):
        CameraRig.preset("arc", 25)
    with pytest.raises(CameraError, match="positive integer"):
        CameraRig.preset("dolly", 0)


def test_arc_neighbours_are_15_degrees_apart(camera_file):
    rig = CameraRig.preset("arc", 5)
    axes = rig.c2w[:, :3, 2]
    for v in range(4):
        assert _angle_deg(axes[v], axes[v + 1]) == pytest.approx(15.0, abs=1e-9)
    # Five arc cameras are the file's cam01..cam05 (to the file's 6 digits and 0.1 cm).
    file_rig = CameraRig.from_syncamvideo_json(camera_file).select(5)
    np.testing.assert_allclose(rig.c2w[:, :3, :3], file_rig.c2w[:, :3, :3], atol=1e-6)
    np.testing.assert_allclose(rig.c2w[:, :3, 3], file_rig.c2w[:, :3, 3], atol=0.05 / 200)  # 0.05 cm


def test_dolly_neighbours_are_half_a_unit_apart(camera_file):
    rig = CameraRig.preset("dolly", 3)
    centres = rig.c2w[:, :3, 3]
    np.testing.assert_allclose(np.linalg.norm(np.diff(centres, axis=0), axis=-1), 0.5, atol=1e-12)
    # Three dolly cameras are the file's cam03, cam09, cam10.
    file_rig = CameraRig.from_syncamvideo_json(camera_file).select(["cam03", "cam09", "cam10"])
    np.testing.assert_allclose(rig.c2w, file_rig.c2w, atol=1e-12)


def test_elevation_and_orbit_angles():
    elevation = CameraRig.preset("elevation", 5)
    world_up = np.array([0.0, 0.0, 1.0])  # UE Z
    down_pitch = [_angle_deg(-elevation.c2w[v, :3, 2], world_up) - 90.0 for v in range(5)]  # -axis vs up: 90 - pitch
    np.testing.assert_allclose(down_pitch, [0.0, -15.0, -30.0, -45.0, -60.0], atol=1e-9)
    assert (np.diff(elevation.c2w[:, 2, 3]) > 0).all()  # each camera higher than the last, looking down
    assert CameraRig.preset("elevation", 9).c2w[-1, 2, 2] == pytest.approx(-math.sin(math.radians(60)))

    orbit = CameraRig.preset("orbit", 6)
    axes = orbit.c2w[:, :3, 2]
    np.testing.assert_allclose(axes[:, 2], -math.sin(math.radians(10.0)), atol=1e-12)  # 10 deg down
    horizontal = axes[:, :2] / np.linalg.norm(axes[:, :2], axis=-1, keepdims=True)
    for v in range(6):
        turn = _angle_deg(np.append(horizontal[v], 0), np.append(horizontal[(v + 1) % 6], 0))
        assert turn == pytest.approx(60.0, abs=1e-9)


# ---------------------------------------------------------------------------------------------------------------
# Intrinsics and plot
# ---------------------------------------------------------------------------------------------------------------


def test_intrinsics(tmp_path):
    k = Intrinsics.training(832, 480)
    assert k.fx == k.fy == pytest.approx(24.0 / 23.76 * 832)
    assert (k.cx, k.cy) == (416.0, 240.0)
    np.testing.assert_array_equal(k.K, [[k.fx, 0, 416.0], [0, k.fy, 240.0], [0, 0, 1]])
    k.to_json(tmp_path / "intrinsics.json")
    assert set(json.loads((tmp_path / "intrinsics.json").read_text())) == {"width", "height", "fx", "fy", "cx", "cy"}
    assert Intrinsics.from_json(tmp_path / "intrinsics.json") == k
    half = k.scaled(416, 240)
    assert (half.fx, half.cx, half.cy) == (k.fx / 2, 208.0, 120.0)
    with pytest.raises(CameraError, match="fx must be finite and positive"):
        Intrinsics(8, 8, -1.0, 1.0, 4.0, 4.0)
    with pytest.raises(CameraError, match="fy must be finite and positive"):
        Intrinsics(8, 8, 1.0, float("nan"), 4.0, 4.0)
    with pytest.raises(CameraError, match="width must be a positive integer"):
        Intrinsics(8.5, 8, 1.0, 1.0, 4.0, 4.0)
    _write_json(tmp_path / "bad.json", {"width": 8, "height": 8, "fx": 1.0, "fy": 1.0, "cx": 4.0})
    with pytest.raises(CameraError, match=r"bad.json has missing keys \['cy'\]"):
        Intrinsics.from_json(tmp_path / "bad.json")


@pytest.mark.parametrize("name", ["syncamvideo", "orbit"])
def test_plot_writes_png(name, tmp_path):
    path = tmp_path / f"{name}.png"
    CameraRig.preset(name, None if name == "syncamvideo" else 6).plot(path, title=name)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000


def test_plot_per_frame_rig_to_file_object():
    c2w = np.repeat(CameraRig.preset("dolly", 2).c2w[:, None], 5, axis=1).copy()  # (2, 5, 4, 4)
    c2w[:, :, 1, 3] += np.linspace(0.0, 0.5, 5)  # the cameras truck sideways
    buffer = io.BytesIO()
    CameraRig(c2w, intrinsics=Intrinsics.training(48, 32)).plot(buffer)
    assert buffer.getvalue().startswith(b"\x89PNG")
