"""The consistency headline scores only geometrically verified matches, so repetitive textures cannot fool it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from syncammaster.evaluate import EvaluationSettings, evaluate_scene
from syncammaster.evaluate.controls import perturbed, swapped
from syncammaster.evaluate.matching import MIN_VERIFIED_MATCHES, fit_matches
from syncammaster.evaluate.report import format_table
from syncammaster.render import project_points, render_views, sample_cameras, sample_scene
from syncammaster.render.world import BACKGROUNDS
from syncammaster.scene import Scene

SIZE, FRAMES, VIEWS = 128, 9, 4
# A procedural scene and camera draw whose wide pairs see little but the brick wall: there most ratio-tested matches
# pair a brick with another brick, and the median over all matches is over a pixel even for the true videos.
BRICK_SEED = 11


@pytest.fixture(scope="module")
def brick_wall() -> Scene:
    spec = dataclasses.replace(sample_scene(BRICK_SEED), background=BACKGROUNDS["brick wall"])
    rig = sample_cameras(BRICK_SEED, VIEWS, size=SIZE)
    videos, _ = render_views(spec, rig, FRAMES, SIZE)
    return Scene(list(videos), rig, rig.intrinsics, prompt=spec.caption)


def _correspondences(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Exact images (count, 2) in two views of random points around the scene centre."""
    rig = sample_cameras(seed, 2, size=SIZE)
    points = np.random.default_rng(seed).uniform(-0.4, 0.4, size=(count, 3)) + np.array([0.0, 0.0, 0.2])
    pixels, depth = project_points(rig, rig.intrinsics, points)  # (2, N, 2), (2, N)
    assert (depth > 0).all()
    return pixels[0], pixels[1]


def test_verification_keeps_a_geometric_consensus_and_drops_the_rest():
    true_a, true_b = _correspondences(40)
    rng = np.random.default_rng(1)
    false_a, false_b = rng.uniform(0, SIZE, size=(20, 2)), rng.uniform(0, SIZE, size=(20, 2))
    matches = fit_matches(np.concatenate([true_a, false_a]), np.concatenate([true_b, false_b]), ransac_px=1.0)
    assert matches.verified[:40].mean() > 0.9
    assert matches.verified[40:].mean() < 0.2


def test_too_small_a_consensus_verifies_nothing():
    points_a, points_b = _correspondences(MIN_VERIFIED_MATCHES - 1)
    matches = fit_matches(points_a, points_b, ransac_px=1.0)
    assert matches.inliers.all()  # a fundamental matrix fits them all, but so would one through false matches
    assert not matches.verified.any()
    points_a, points_b = _correspondences(MIN_VERIFIED_MATCHES + 4)
    assert fit_matches(points_a, points_b, ransac_px=1.0).verified.sum() >= MIN_VERIFIED_MATCHES


def test_on_a_brick_wall_render_a_swap_or_3_degrees_makes_the_headline_clearly_worse(brick_wall):
    settings = EvaluationSettings(frames=3)
    truth = evaluate_scene(brick_wall, settings)
    summary = truth.report["summary"]
    # The bricks fool the ratio test (the median over every distinct match is pixels off), not the verified matches.
    assert summary["epipolar_all"]["median_px"] > 2 * summary["epipolar"]["median_px"]
    assert summary["epipolar"]["median_px"] < 1.0
    assert 0 < summary["pairs_scored"] < summary["pairs"]  # wide pairs see too little: they score chance
    assert "n/a" in format_table([truth])

    # The two views sharing the most verified matches trade cameras; or every camera turns by 3 degrees.
    best = max(truth.report["pairs"], key=lambda p: p["verified"])
    for wrong in (swapped(brick_wall, *best["views"]), perturbed(brick_wall, 3)):
        worse = evaluate_scene(wrong, settings).report["summary"]
        assert worse["epipolar_px"] > 1.5 * summary["epipolar_px"], (worse["epipolar_px"], summary["epipolar_px"])
        assert worse["pairs_scored"] == summary["pairs_scored"]
