"""The consistency headline scores only geometrically verified matches, so repetitive textures cannot fool it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from syncammaster.evaluate import EvaluationSettings, evaluate_scene
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


def test_a_brick_wall_render_scores_under_a_pixel_and_swapped_cameras_several_times_worse(brick_wall):
    truth = evaluate_scene(brick_wall, EvaluationSettings(frames=3))
    summary = truth.report["summary"]
    assert summary["epipolar_all"]["median_px"] > 1.0  # every ratio-tested match: fooled by the bricks
    assert summary["epipolar"]["median_px"] < 1.0
    assert summary["epipolar"]["num_matches"] >= 2 * MIN_VERIFIED_MATCHES
    assert summary["epipolar"]["num_matches"] < summary["epipolar_all"]["num_matches"]
    # Pairs that see too little for a verified consensus have no headline (n/a), only the figure over all matches.
    undecided = [p for p in truth.report["pairs"] if p["epipolar"] is None]
    assert undecided and all(p["epipolar_all"] is not None for p in undecided)
    assert "n/a" in format_table([truth])

    # The two views sharing the most verified matches trade places: each now claims the other's camera.
    best = max(truth.report["pairs"], key=lambda p: (p["epipolar"] or {}).get("num_matches", 0))
    i, j = (brick_wall.rig.names.index(name) for name in best["views"])
    order = list(range(VIEWS))
    order[i], order[j] = j, i
    swapped = Scene([brick_wall.videos[k] for k in order], brick_wall.rig, brick_wall.intrinsics)
    wrong = evaluate_scene(swapped, EvaluationSettings(frames=3)).report["summary"]["epipolar"]["median_px"]
    assert wrong > 5 * summary["epipolar"]["median_px"] and wrong > 3.0
