"""Tests for syncammaster.evaluate: epipolar geometry, matching on renders, synchronization, the command."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from syncammaster.cameras import UE_UNITS_PER_TRAINING_UNIT, CameraRig, Intrinsics, ue_to_opencv_c2w
from syncammaster.cli import main
from syncammaster.evaluate import (
    CHANCE_FRACTION,
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
from syncammaster.evaluate.controls import farthest_from, perturbed, swapped
from syncammaster.evaluate.matching import MIN_VERIFIED_MATCHES
from syncammaster.evaluate.report import format_table
from syncammaster.render import LOOK_AT, project_points, render_views, sample_scene, ue_camera_rows
from syncammaster.scene import Scene, write_video

SIZE, FRAMES = 128, 9
POSED_SIZE = 192  # 128 px views of this scene give too few matches for a stable pose
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
    assert summary["pairs"] == 3 and summary["pairs_scored"] == 3 and summary["coverage"] == 1.0
    assert summary["epipolar_px"] < 1.0
    assert summary["epipolar"]["num_matches"] >= 3 * MIN_VERIFIED_MATCHES
    assert summary["mat_pix"] > 5
    # At 128 px the matches are too few and too coarse for a stable pose: each pair says why it has none.
    for pair in evaluation.report["pairs"]:
        assert pair["pose_estimated"] or pair["groups"][0]["pose_na_reason"]
    # Rendered views are synchronized: every pair's motion curves peak together.
    assert summary["sync_lag0_share"] == 1.0 and summary["sync_corr"] > 0.9


@pytest.fixture(scope="module")
def rendered_192() -> Scene:
    """The same scene and cameras at 192 px (5 frames): enough matches for stable poses."""
    rig = arc_rig()
    rig = CameraRig(rig.c2w, intrinsics=Intrinsics.training(POSED_SIZE, POSED_SIZE), subject=rig.subject)
    videos, _ = render_views(sample_scene(SCENE_SEED), rig, 5, POSED_SIZE)
    return Scene(list(videos), rig, rig.intrinsics, prompt="a procedural scene")


def test_poses_estimated_from_rendered_views_are_the_requested_ones(rendered_192):
    report = evaluate_scene(rendered_192, EvaluationSettings(frames=3)).report
    assert report["summary"]["pairs_posed"] == 3, [p["groups"][0]["pose_na_reason"] for p in report["pairs"]]
    for pair in report["pairs"]:
        assert pair["rot_err_deg"] < 1.0 and pair["trans_err"] < 0.05, pair


def test_every_camera_measure_grows_down_the_ladder_of_wrong_cameras(rendered_192):
    settings = EvaluationSettings(frames=3)
    assert farthest_from(rendered_192, "cam01") == "cam03"  # the two ends of the arc
    rungs = [rendered_192, *(perturbed(rendered_192, angle) for angle in (1, 3, 10)),
             swapped(rendered_192, "cam01", "cam03")]
    summaries = [evaluate_scene(scene, settings).report["summary"] for scene in rungs]
    for key in ("epipolar_px", "rot_err_deg", "trans_err"):
        values = [s[key] for s in summaries]  # truth, 1, 3, 10 degrees, the swap
        assert all(x < y for x, y in zip(values[:-2], values[1:-1], strict=True)), (key, values)
        # The swap: beyond 10 degrees for the poses (the relative rotations turn by 30 degrees, the baselines
        # reverse). On this mirror-symmetric arc the swapped cameras' epipolar lines lie close to the true ones, so
        # the epipolar headline places the swap between the 3 and the 10 degree rungs (5.1 against 5.4 px).
        assert values[-1] > values[3 if key != "epipolar_px" else 2], (key, values)
    assert summaries[2]["epipolar_px"] > 5 * summaries[0]["epipolar_px"]  # 3 degrees: clearly worse
    # The videos did not change: what is estimated from them alone stays as it was.
    for key in ("pairs_scored", "pairs_posed", "mat_pix"):
        assert len({s[key] for s in summaries}) == 1, key


def test_a_pair_that_fails_counts_against_the_scene(rendered):
    settings = EvaluationSettings(frames=3)
    truth = evaluate_scene(rendered, settings).report["summary"]
    noise = np.random.default_rng(0).integers(0, 256, rendered.videos[2].shape, dtype=np.uint8)
    broken = Scene([rendered.videos[0], rendered.videos[1], noise], rendered.rig, rendered.intrinsics)
    report = evaluate_scene(broken, settings).report
    summary = report["summary"]
    failed = [p for p in report["pairs"] if not p["scored"]]
    assert len(failed) == 2 and summary["pairs_scored"] == 1 and summary["coverage"] == pytest.approx(1 / 3)
    chance = CHANCE_FRACTION * SIZE
    assert all(p["epipolar_px"] == chance for p in failed)
    scores = [p["epipolar_px"] for p in report["pairs"]]
    assert summary["epipolar_px"] == pytest.approx(np.exp(np.mean(np.log(scores))))  # geometric mean of all pairs
    assert summary["epipolar_px"] > 10 * truth["epipolar_px"]
    # The scored pair alone still agrees with the cameras: the secondary median over scored pairs looks fine.
    assert summary["epipolar"]["median_px"] < 1.0
    table = format_table([evaluate_scene(broken, settings, name="broken")])
    assert "1/3" in table and "n/a" in table and "RotErr" in table and "Mat. Pix." in table


def test_moving_cameras_are_fitted_frame_by_frame(rendered):
    per_frame = np.repeat(np.array(rendered.rig.c2w)[:, None], FRAMES, axis=1)  # (V, T, 4, 4): a moving-camera file
    moving = Scene(rendered.videos, CameraRig(per_frame, intrinsics=rendered.intrinsics), rendered.intrinsics)
    report = evaluate_scene(moving, EvaluationSettings(frames=3)).report
    assert not report["static_cameras"]
    for pair in report["pairs"]:
        assert [group["frames"] for group in pair["groups"]] == [[0], [4], [8]]
    # One frame's matches are fewer than three frames' pooled, so fewer groups verify; the headline counts each.
    static = evaluate_scene(rendered, EvaluationSettings(frames=3)).report["summary"]
    assert report["summary"]["epipolar_px"] >= static["epipolar_px"]


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


def test_evaluate_command_writes_the_papers_table_and_every_pair_to_json(rendered, tmp_path, capsys):
    scene_dir = rendered.write(tmp_path / "scene", grid=False)
    json_path = tmp_path / "out" / "eval.json"
    assert main(["evaluate", str(scene_dir), str(scene_dir), "--json", str(json_path), "--frames", "2",
                 "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "cam01-cam02" in table and "all 2 scenes" in table
    for column in ("Epi px", "coverage", "RotErr", "TransErr", "Mat. Pix.", "CLIP-V", "FVD-V"):
        assert column in table
    assert "CLIP-V" in table and "empty: no --clip DIR given" in table and "FVD-V" in table
    report = json.loads(json_path.read_text())
    assert set(report["columns"]) >= {"Epi px", "RotErr", "TransErr", "Mat. Pix.", "CLIP-V", "FVD-V"}
    assert "empty" in report["columns"]["FVD-V"]
    assert len(report["scenes"]) == 2
    scene = report["scenes"][0]
    assert scene["table"]["CLIP-V"] is None and scene["table"]["Epi px"] == scene["summary"]["epipolar_px"]
    pairs = scene["pairs"]
    assert sorted(tuple(p["views"]) for p in pairs) == [("cam01", "cam02"), ("cam01", "cam03"), ("cam02", "cam03")]
    for pair in pairs:
        assert {"epipolar_px", "scored", "rot_err_deg", "trans_err", "mat_pix", "sync", "groups"} <= set(pair)
        assert len(pair["groups"]) == 1 and pair["groups"][0]["frames"] == [0, 8]  # static cameras: frames pooled
    assert report["summary"]["epipolar_px"] < 1.0 and report["summary"]["coverage"] == 1.0
    plots = sorted(p.name for p in json_path.parent.glob("*.png"))
    assert plots == ["000_scene_worst_pair.png", "001_scene_worst_pair.png"]
    assert (json_path.parent / plots[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Nothing is replaced without --overwrite.
    assert main(["evaluate", str(scene_dir), "--json", str(json_path), "--quiet"]) == 1
    assert "already exists" in capsys.readouterr().err


def _refused(args: list[str], out: Path, capsys) -> str:
    """Runs evaluate expecting one line on stderr, exit 1 and nothing written under ``out``."""
    assert main(["evaluate", *args, "--json", str(out / "eval.json"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert not out.exists() or not any(out.iterdir())
    return err


def test_evaluate_command_refuses_bad_scenes_in_one_line_and_writes_nothing(rendered, tmp_path, capsys):
    good = rendered.write(tmp_path / "good", grid=False)
    out = tmp_path / "out"

    single = Scene(rendered.videos[:1], CameraRig(rendered.rig.c2w[:1]), rendered.intrinsics)
    assert "at least two views" in _refused([str(good), str(single.write(tmp_path / "single", grid=False))], out,
                                            capsys)

    no_cameras = rendered.write(tmp_path / "no_cameras", grid=False)
    (no_cameras / "cameras" / "camera_extrinsics.json").unlink()
    assert "camera_extrinsics.json" in _refused([str(good), str(no_cameras)], out, capsys)

    short = rendered.write(tmp_path / "short", grid=False)
    write_video(short / "videos" / "cam02.mp4", rendered.videos[1][:5])
    assert "same length" in _refused([str(short)], out, capsys)

    # Cameras moving over 5 frames for videos of 9.
    per_frame = np.repeat(np.array(rendered.rig.c2w)[:, None], 5, axis=1)  # (V, 5, 4, 4)
    per_frame[:, :, 2, 3] += 0.01 * np.arange(5)  # rising a little every frame
    moving = Scene([v[:5] for v in rendered.videos], CameraRig(per_frame), rendered.intrinsics)
    moving_dir = moving.write(tmp_path / "moving", grid=False)
    for name, video in zip(rendered.rig.names, rendered.videos, strict=True):
        write_video(moving_dir / "videos" / f"{name}.mp4", video)
    assert "poses for 5 frames" in _refused([str(moving_dir)], out, capsys)

    # Intrinsics of another image size than the videos'.
    resized = rendered.write(tmp_path / "resized", grid=False)
    rendered.intrinsics.scaled(2 * SIZE, 2 * SIZE).to_json(resized / "cameras" / "intrinsics.json")
    assert "scale the intrinsics" in _refused([str(resized)], out, capsys)

    broken = rendered.write(tmp_path / "broken", grid=False)
    (broken / "videos" / "cam02.mp4").write_bytes(b"not a video")
    assert "cam02.mp4" in _refused([str(broken)], out, capsys)

    off_centre = rendered.write(tmp_path / "off_centre", grid=False)
    bad = dataclasses.replace(rendered.intrinsics, cx=3 * SIZE)
    bad.to_json(off_centre / "cameras" / "intrinsics.json")
    assert "principal point" in _refused([str(good), str(off_centre)], out, capsys)

    for n, (values, message) in enumerate(((dict(fx=0.01, fy=0.01), "field of view"),
                                           (dict(fy=40 * SIZE), "wider than tall"))):
        given = tmp_path / f"intrinsics{n}.json"
        dataclasses.replace(rendered.intrinsics, **values).to_json(given)
        assert message in _refused([str(good), "--intrinsics", str(given)], out, capsys)
