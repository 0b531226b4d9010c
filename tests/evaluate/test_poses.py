"""Relative poses estimated from matches, and RotErr / TransErr against the requested cameras."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from syncammaster.evaluate import PoseError, PoseEstimator, pose_errors, relative_pose, rotation_angle_deg
from syncammaster.evaluate.poses import MIN_POSE_INLIERS, PoseEstimate
from syncammaster.render import project_points, sample_cameras

SIZE = 128


def _correspondences(count: int, noise_px: float = 0.0, seed: int = 0):
    """Images (count, 2) in two views of random points filling the scene's middle, the rig and its intrinsics."""
    rig = sample_cameras(seed, 2, size=SIZE)
    points = np.random.default_rng(seed).uniform(-0.6, 0.6, size=(count, 3)) + np.array([0.0, 0.0, 0.3])
    pixels, depth = project_points(rig, rig.intrinsics, points)  # (2, N, 2), (2, N)
    assert (depth > 0).all()
    pixels = pixels + np.random.default_rng(seed + 1).normal(scale=noise_px, size=pixels.shape)
    return pixels[0], pixels[1], rig


@pytest.mark.parametrize("method", ["colmap", "opencv"])
def test_exact_matches_give_the_requested_pose(method):
    points_a, points_b, rig = _correspondences(80)
    estimate = PoseEstimator(method).estimate(points_a, points_b, rig.intrinsics)
    assert estimate.estimated and estimate.inliers >= 75 and estimate.spread_deg < 0.1
    errors = pose_errors(estimate, *relative_pose(rig.c2w[0], rig.c2w[1]))
    assert errors["rot_err_deg"] < 0.05 and errors["trans_err_deg"] < 0.2 and errors["trans_err"] < 0.005


def test_the_errors_are_the_angles_of_a_known_mistake():
    rotation = cv2.Rodrigues(np.array([0.2, -0.4, 0.1]))[0]  # the requested relative rotation
    turn = cv2.Rodrigues(np.array([0.0, math.radians(7.0), 0.0]))[0]  # 7 degrees about y
    requested_t = np.array([1.0, 0.0, 0.0])
    estimate = PoseEstimate(turn @ rotation, turn @ requested_t, 50, 0.0, None)
    errors = pose_errors(estimate, rotation, 3.0 * requested_t)  # the requested baseline's length does not matter
    assert errors["rot_err_deg"] == pytest.approx(7.0)
    assert errors["trans_err_deg"] == pytest.approx(7.0)
    assert errors["trans_err"] == pytest.approx(2 * math.sin(math.radians(3.5)))
    reversed_t = PoseEstimate(rotation, -requested_t, 50, 0.0, None)
    assert pose_errors(reversed_t, rotation, requested_t)["trans_err"] == pytest.approx(2.0)
    assert rotation_angle_deg(np.eye(3)) == 0.0


def test_too_few_or_random_matches_give_no_pose():
    points_a, points_b, rig = _correspondences(MIN_POSE_INLIERS - 1)
    estimate = PoseEstimator().estimate(points_a, points_b, rig.intrinsics)
    assert not estimate.estimated and "fewer than" in estimate.reason
    assert pose_errors(estimate, *relative_pose(rig.c2w[0], rig.c2w[1]))["rot_err_deg"] is None
    rng = np.random.default_rng(3)
    noise = PoseEstimator().estimate(rng.uniform(0, SIZE, (60, 2)), rng.uniform(0, SIZE, (60, 2)), rig.intrinsics)
    assert not noise.estimated


def test_an_unknown_estimator_is_refused():
    with pytest.raises(PoseError, match="unknown pose estimator"):
        PoseEstimator("glomap")


def _rig_correspondences(num_views: int, count: int, noise_px: float, seed: int):
    """Images of ``count`` random 3-D points in every view of a sampled rig, with pixel noise, and the rig."""
    rig = sample_cameras(seed, num_views, size=SIZE)
    points = np.random.default_rng(seed).uniform(-0.6, 0.6, size=(count, 3)) + np.array([0.0, 0.0, 0.3])
    pixels, depth = project_points(rig, rig.intrinsics, points)  # (V, N, 2), (V, N)
    assert (depth > 0).all()
    return pixels + np.random.default_rng(seed + 1).normal(scale=noise_px, size=pixels.shape), rig


def test_one_reconstruction_of_every_view_gives_every_requested_pose():
    pixels, rig = _rig_correspondences(4, 120, 0.0, seed=2)
    pairs = {(a, b): (pixels[a], pixels[b]) for a in range(4) for b in range(a + 1, 4)}
    estimates = PoseEstimator("colmap").estimate_views(pairs, rig.intrinsics, rig.names)
    assert sorted(estimates) == sorted(pairs)
    for (a, b), estimate in estimates.items():
        assert estimate.estimated, (a, b, estimate.reason)
        errors = pose_errors(estimate, *relative_pose(rig.c2w[a], rig.c2w[b]))
        assert errors["rot_err_deg"] < 0.05 and errors["trans_err"] < 0.005, (a, b, errors)


def test_a_view_matched_to_no_other_has_no_pose():
    pixels, rig = _rig_correspondences(3, 120, 0.0, seed=2)
    rng = np.random.default_rng(5)
    pairs = {(0, 1): (pixels[0], pixels[1]),
             (0, 2): (rng.uniform(0, SIZE, (40, 2)), rng.uniform(0, SIZE, (40, 2))),
             (1, 2): (rng.uniform(0, SIZE, (40, 2)), rng.uniform(0, SIZE, (40, 2)))}
    estimates = PoseEstimator("colmap").estimate_views(pairs, rig.intrinsics, rig.names)
    assert estimates[(0, 1)].estimated
    for pair in ((0, 2), (1, 2)):
        assert not estimates[pair].estimated and "cam03 not registered" in estimates[pair].reason


def test_one_reconstruction_is_more_accurate_than_fits_per_pair_on_a_floor():
    """Noisy matches mostly on the floor plane (as SIFT finds them on renders) leave each pair's essential matrix
    ill-conditioned; one bundle adjustment of all views pins every view by several pairs."""
    rig = sample_cameras(1, 4, size=256)
    rng = np.random.default_rng(1)
    floor = np.concatenate([rng.uniform(-0.8, 0.8, (150, 2)), np.zeros((150, 1))], axis=1)  # (150, 3) on Z = 0
    above = rng.uniform(-0.4, 0.4, (15, 3)) + np.array([0.0, 0.0, 0.4])  # (15, 3) a few points off the floor
    pixels, depth = project_points(rig, rig.intrinsics, np.concatenate([floor, above]))  # (4, N, 2), (4, N)
    seen = (depth > 0).all(0) & ((pixels > 0) & (pixels < 256)).all(axis=(0, 2))
    pixels = pixels[:, seen] + rng.normal(scale=0.3, size=pixels[:, seen].shape)
    pairs = {(a, b): (pixels[a], pixels[b]) for a in range(4) for b in range(a + 1, 4)}
    errors = {}
    for method in ("colmap", "colmap-pairs"):
        estimates = PoseEstimator(method).estimate_views(pairs, rig.intrinsics, rig.names)
        errors[method] = {pair: pose_errors(e, *relative_pose(rig.c2w[pair[0]], rig.c2w[pair[1]]))["rot_err_deg"]
                          for pair, e in estimates.items() if e.estimated}
    assert len(errors["colmap"]) == 6 and max(errors["colmap"].values()) < 0.1, errors["colmap"]
    assert np.mean(list(errors["colmap"].values())) < 0.5 * np.mean(list(errors["colmap-pairs"].values())), errors
