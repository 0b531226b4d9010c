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
