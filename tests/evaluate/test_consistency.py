"""Tests for syncammaster.evaluate: epipolar geometry, matching on renders, synchronization, the command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from syncammaster.cameras import UE_UNITS_PER_TRAINING_UNIT, CameraRig, Intrinsics, ue_to_opencv_c2w
from syncammaster.cli import main
from syncammaster.evaluate import (
    EvaluationError,
    EvaluationSettings,
    GeometryError,
    epipolar_distances,
    evaluate_scene,
    first_frame_jump,
    fundamental_from_cameras,
    motion_energy,
    sample_frames,
    sync_score,
)
from syncammaster.render import LOOK_AT, project_points, render_views, sample_scene, ue_camera_rows
from syncammaster.scene import Scene

SIZE, FRAMES = 128, 9
ARC_AZIMUTHS_DEG = (-15.0, 0.0, 15.0)  # three cameras 15 degrees apart, as SynCamVideo's closest pairs
SCENE_SEED = 11


def arc_rig(azimuths_deg=ARC_AZIMUTHS_DEG, distance: float = 1.5, pitch_deg: float = -20.0) -> CameraRig:
    """Static cameras on a circle around the render's subject, looking at it (training units)."""
    yaw = np.array(azimuths_deg, dtype=np.float64)
    rows = ue_camera_rows(yaw, np.full(len(yaw), pitch_deg), np.zeros((len(yaw), 3)))  # (V, 4, 4)
    look_at_cm = np.array(LOOK_AT) * UE_UNITS_PER_TRAINING_UNIT
    rows[:, 3, :3] = look_at_cm - distance * UE_UNITS_PER_TRAINING_UNIT * rows[:, 0, :3]
    return CameraRig(ue_to_opencv_c2w(rows), intrinsics=Intrinsics.training(SIZE, SIZE), subject=LOOK_AT)


@pytest.fixture(scope="module")
def rendered() -> Scene:
    """Ground truth: one procedural scene seen by three cameras 15 degrees apart."""
    rig = arc_rig()
    videos, _ = render_views(sample_scene(SCENE_SEED), rig, FRAMES, SIZE)
    return Scene(list(videos), rig, rig.intrinsics, prompt="a procedural scene")


# ----------------------------------------------------------------------------------------------------------------
# Geometry
# ----------------------------------------------------------------------------------------------------------------


def test_projections_of_3d_points_lie_on_their_epipolar_lines():
    rig = arc_rig((-30.0, 10.0))
    intrinsics = rig.intrinsics
    points = np.random.default_rng(0).uniform(-0.5, 0.5, size=(50, 3)) + np.array(LOOK_AT)  # (N, 3) near the subject
    pixels, depth = project_points(rig, intrinsics, points)  # (2, N, 2), (2, N)
    assert (depth > 0).all()
    fundamental = fundamental_from_cameras(rig.c2w[0], intrinsics, rig.c2w[1], intrinsics)
    exact = epipolar_distances(fundamental, pixels[0], pixels[1])
    assert exact["sampson"].max() < 1e-9 and exact["symmetric"].max() < 1e-9

    # A shift of 2 px along the image-b epipolar line's normal is a 2 px symmetric distance in image b.
    lines = pixels[0] @ fundamental[:, :2].T + fundamental[:, 2]  # (N, 3) lines F x_a in image b
    normals = lines[:, :2] / np.linalg.norm(lines[:, :2], axis=1, keepdims=True)
    shifted = epipolar_distances(fundamental, pixels[0], pixels[1] + 2.0 * normals)
    line_in_b = np.abs(np.sum(np.c_[pixels[1] + 2.0 * normals, np.ones(50)] * lines, 1)) / np.linalg.norm(
        lines[:, :2], axis=1
    )
    np.testing.assert_allclose(line_in_b, 2.0, atol=1e-9)
    assert 0.5 < np.median(shifted["sampson"]) < 2.0


def test_cameras_sharing_a_centre_have_no_epipolar_geometry():
    rig = arc_rig((0.0, 0.0))
    with pytest.raises(GeometryError, match="no baseline"):
        fundamental_from_cameras(rig.c2w[0], rig.intrinsics, rig.c2w[1], rig.intrinsics)


def test_sampled_frames_cover_the_clip():
    assert sample_frames(17, 5) == [0, 4, 8, 12, 16]
    assert sample_frames(3, 8) == [0, 1, 2]


# ----------------------------------------------------------------------------------------------------------------
# Rendered ground truth
# ----------------------------------------------------------------------------------------------------------------


def test_rendered_views_agree_with_their_cameras_to_under_a_pixel(rendered):
    evaluation = evaluate_scene(rendered, EvaluationSettings(frames=3))
    summary = evaluation.report["summary"]
    assert summary["pairs"] == 3
    assert summary["epipolar"]["num_matches"] >= 30
    assert summary["epipolar"]["median_px"] < 1.0
    assert summary["matched_pixels_per_frame"] > 5
    # Rendered views are synchronized: every pair's motion curves peak together.
    assert summary["sync_lag0_share"] == 1.0 and summary["sync_corr"] > 0.9


def test_swapping_two_views_cameras_makes_the_epipolar_error_large(rendered):
    good = evaluate_scene(rendered, EvaluationSettings(frames=3)).report["summary"]["epipolar"]["median_px"]
    # The videos of cam01 and cam03 traded places: each now claims the other's camera.
    swapped = Scene([rendered.videos[2], rendered.videos[1], rendered.videos[0]], rendered.rig, rendered.intrinsics)
    report = evaluate_scene(swapped, EvaluationSettings(frames=3)).report
    by_pair = {tuple(p["views"]): p["epipolar"] and p["epipolar"]["median_px"] for p in report["pairs"]}
    # cam01 and cam03, 30 degrees apart, share too few matches at 128 px for a verified consensus: no headline.
    assert by_pair.pop(("cam01", "cam03")) is None
    assert report["summary"]["epipolar"]["median_px"] > 3.0
    # Every other pair now holds one view with the wrong camera.
    assert min(by_pair.values()) > 10 * max(good, 0.1)


def test_scenes_without_intrinsics_use_the_training_formula(rendered):
    bare = Scene(rendered.videos, CameraRig(rendered.rig.c2w), None)
    report = evaluate_scene(bare, EvaluationSettings(frames=2)).report
    assert report["intrinsics"]["source"] == "training formula"
    assert report["intrinsics"]["fx"] == pytest.approx(24 / 23.76 * SIZE)
    given = evaluate_scene(bare, EvaluationSettings(frames=2), focal_per_side=2.0).report["intrinsics"]
    assert given["fx"] == pytest.approx(2.0 * SIZE) and given["source"].startswith("focal_per_side")


def test_one_view_is_refused(rendered):
    single = Scene(rendered.videos[:1], CameraRig(rendered.rig.c2w[:1]), rendered.intrinsics)
    with pytest.raises(EvaluationError, match="at least two views"):
        evaluate_scene(single)


# ----------------------------------------------------------------------------------------------------------------
# Synchronization
# ----------------------------------------------------------------------------------------------------------------


def _moving_square(num_frames: int, start: int, positions: np.ndarray) -> np.ndarray:
    """A white square on black that stands still, jumps about, then stands still: (T, 32, 32, 3) uint8."""
    video = np.zeros((num_frames, 32, 32, 3), dtype=np.uint8)
    for t in range(num_frames):
        x = positions[min(max(t - start, 0), len(positions) - 1)]
        video[t, 10:18, x : x + 8] = 255
    return video


def test_sync_score_finds_a_view_running_late():
    positions = np.array([2, 3, 9, 4, 12, 20, 21, 13])
    on_time = _moving_square(24, 6, positions)
    late = _moving_square(24, 8, positions)  # the same motion two frames later
    synced = sync_score(motion_energy(on_time), motion_energy(on_time))
    assert synced["best_lag"] == 0 and synced["corr"] == pytest.approx(1.0)
    shifted = sync_score(motion_energy(on_time), motion_energy(late))
    assert shifted["best_lag"] == 2 and shifted["best_corr"] > 0.99 and shifted["corr"] < 0.8


def test_first_frame_jump_sees_a_recoloured_first_frame():
    steady = _moving_square(9, 0, np.arange(0, 27, 3))  # moves 3 px every frame
    assert first_frame_jump(steady) == pytest.approx(1.0)
    recoloured = steady.copy()
    recoloured[0, ..., 2] = 90  # frame 0 alone tinted blue, as a VAE that codes it apart does
    assert first_frame_jump(recoloured) > 3
    assert first_frame_jump(steady.astype(np.float32) / 127.5 - 1) == pytest.approx(1.0)  # any value range
    assert first_frame_jump(steady[:2]) is None
    assert first_frame_jump(np.full((9, 16, 16, 3), 100, dtype=np.uint8)) is None  # nothing changes after frame 0


def test_still_views_get_no_sync_score():
    still = np.full((9, 16, 16, 3), 100, dtype=np.uint8)
    score = sync_score(motion_energy(still), motion_energy(still))
    assert score["flat"] and score["corr"] is None and score["best_lag"] is None


# ----------------------------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------------------------


def test_evaluate_command_writes_every_pair_to_json_and_the_worst_pair_plot(rendered, tmp_path, capsys):
    scene_dir = rendered.write(tmp_path / "scene", grid=False)
    json_path = tmp_path / "out" / "eval.json"
    assert main(["evaluate", str(scene_dir), str(scene_dir), "--json", str(json_path), "--frames", "2",
                 "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "cam01-cam02" in table and "all 2 scenes" in table
    report = json.loads(json_path.read_text())
    assert len(report["scenes"]) == 2
    pairs = report["scenes"][0]["pairs"]
    assert sorted(tuple(p["views"]) for p in pairs) == [("cam01", "cam02"), ("cam01", "cam03"), ("cam02", "cam03")]
    for pair in pairs:
        assert {"matches_per_frame", "matched_pixels_per_frame", "epipolar", "sync", "frames"} <= set(pair)
        assert len(pair["frames"]) == 2
    assert report["summary"]["epipolar"]["median_px"] < 1.0
    plots = sorted(p.name for p in json_path.parent.glob("*.png"))
    assert plots == ["000_scene_worst_pair.png", "001_scene_worst_pair.png"]
    assert plots and (json_path.parent / plots[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Nothing is replaced without --overwrite.
    assert main(["evaluate", str(scene_dir), "--json", str(json_path), "--quiet"]) == 1
    assert "already exists" in capsys.readouterr().err


def test_evaluate_command_fails_in_one_line_on_one_view_and_on_a_corrupt_video(rendered, tmp_path, capsys):
    single = Scene(rendered.videos[:1], CameraRig(rendered.rig.c2w[:1]), rendered.intrinsics)
    single_dir = single.write(tmp_path / "single", grid=False)
    assert main(["evaluate", str(single_dir), "--no-plots", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "at least two views" in err

    broken_dir = rendered.write(tmp_path / "broken", grid=False)
    (broken_dir / "videos" / "cam02.mp4").write_bytes(b"not a video")
    assert main(["evaluate", str(broken_dir), "--no-plots", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cam02.mp4" in err
