"""Cross-view consistency of one scene folder (generated, rendered or real) with the cameras it claims.

For every pair of views (a, b), at time steps sampled evenly over the clip:

1. Matches: SIFT features of the two frames of each time step, Lowe's ratio test, mutual nearest neighbours
   (:mod:`.matching`; or a learned matcher from a local folder). "Mat. Pix." counts, per time step, the distinct
   pixels of view a holding a match that a fundamental matrix fitted to that frame pair by RANSAC keeps.
2. Pooling. Static cameras have one geometry for the whole clip, so the matches of all sampled time steps are pooled
   and fitted together; moving cameras are fitted frame by frame (one "group" per sampled frame). Within a group,
   matches that repeat (within ``DISTINCT_PX`` in both views: a static point matched in every frame) count once.
3. Verification: the distinct matches that a fundamental matrix fitted to them by MAGSAC++ explains, when at least
   ``MIN_VERIFIED_MATCHES`` do. It looks at the matches alone, not at the cameras. A pair with a verified group is
   "scored"; coverage is the share of pairs scored.
4. Epipolar error: the Sampson distance, in pixels, of each verified match to the fundamental matrix implied by the
   scene's cameras and intrinsics (:mod:`.geometry`). Views that show one 3-D scene from the requested cameras put
   their matches on the requested epipolar lines (a small fraction of a pixel for renders).
5. Camera accuracy: the relative poses of all views estimated together from each group's distinct matches (one
   COLMAP reconstruction by default) against the requested ones, RotErr and TransErr per pair (:mod:`.poses`).
6. Synchronization: motion-energy curves of the two whole videos, compared over time (:mod:`.sync`).

The headline (``epipolar_px``). Each group scores the median Sampson distance of its verified matches, kept within
[``FLOOR_PX``, chance level], and scores the chance level when it has no verified consensus or the cameras define no
epipolar geometry; a pair scores the geometric mean over its groups, and the scene the geometric mean over all its
pairs. The chance level, ``CHANCE_FRACTION`` of the image's longer side, is what matches unrelated to the cameras
score (the median Sampson distance of random point pairs is 19-27 px on 128 px SynCamVideo-like rigs). So a pair that
fails, or whose matches disagree with the cameras, counts against the scene as much as the worst possible pair; a
scene's headline can never improve by a pair failing. The mean is geometric because the scores span two orders of
magnitude (0.1 px on renders, 25 px at chance): a pair going from 0.15 to 1.5 px moves the headline as much as one
going from 2.5 to 25 px, so a few scored pairs that turn wrong still show among many that failed. Coverage (pairs
scored / all pairs) is reported beside it, and the median over the verified matches of the scored pairs alone
(``epipolar``) and over every distinct match (``epipolar_all``) are kept as secondary figures.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..cameras import Intrinsics
from ..scene import Scene
from .geometry import GeometryError, epipolar_distances, fundamental_from_cameras
from .matching import (
    DEFAULT_RANSAC_PX,
    DEFAULT_RATIO,
    MIN_VERIFIED_MATCHES,
    Features,
    LearnedMatcher,
    Matches,
    SiftMatcher,
    distinct_matches,
    fit_matches,
)
from .poses import DEFAULT_ESTIMATOR, PoseEstimate, PoseEstimator, pose_errors, relative_pose
from .sync import DEFAULT_MAX_LAG, motion_energy, sync_score

DEFAULT_SAMPLED_FRAMES = 8
THRESHOLDS_PX = (1.0, 3.0)  # shares of matches within these epipolar distances are reported
# Chance level of the headline, as a fraction of the image's longer side: the median Sampson distance of uniformly
# random point pairs under the requested geometry is 19-27 px (0.15-0.21) on the 24 pairs of 4 held-out 128 px renders
# of seed 9000, so a pair whose matches say nothing about the cameras scores about 0.2 of the side.
CHANCE_FRACTION = 0.2
# Intrinsics no camera has: a principal point outside the image, pixels this far from square, a field of view outside
# these bounds.
MAX_PIXEL_ASPECT = 4.0
FIELD_OF_VIEW_DEG = (1.0, 170.0)
FLOOR_PX = 0.01  # scores below SIFT's precision are not told apart (and the geometric mean needs them positive)


class EvaluationError(ValueError):
    """A scene that cannot be evaluated (one view, missing cameras, impossible intrinsics, bad settings)."""


@dataclass
class EvaluationSettings:
    """How scenes are scored.

    Attributes:
        frames: time steps sampled evenly over the clip (first and last included) for feature matching.
        ratio: Lowe's ratio-test threshold.
        ransac_px: inlier threshold of the fits to the matches (RANSAC behind Mat. Pix., MAGSAC++ behind the
            verified matches, the pose fits).
        max_lag: largest lag (frames) searched by the synchronization score.
        pose_estimator: "colmap" or "opencv" (:mod:`.poses`).
    """

    frames: int = DEFAULT_SAMPLED_FRAMES
    ratio: float = DEFAULT_RATIO
    ransac_px: float = DEFAULT_RANSAC_PX
    max_lag: int = DEFAULT_MAX_LAG
    pose_estimator: str = DEFAULT_ESTIMATOR

    def __post_init__(self) -> None:
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) or self.frames < 1:
            raise EvaluationError(f"the number of sampled frames must be a positive integer, got {self.frames!r}")
        if isinstance(self.max_lag, bool) or not isinstance(self.max_lag, int) or self.max_lag < 0:
            raise EvaluationError(f"the largest lag must be a non-negative integer, got {self.max_lag!r}")


@dataclass
class PairDetail:
    """What the worst-pair plot needs: one pair at its best-matched sampled frame (most matches)."""

    views: tuple[int, int]
    frame: int
    matches: Matches  # that frame's matches; ``verified`` marks those whose group consensus holds them
    fundamental: np.ndarray | None
    distances: np.ndarray | None  # (N,) Sampson distance of every match of that frame


@dataclass
class SceneEvaluation:
    """The scores of one scene: ``report`` (JSON-ready) plus the distances behind it and the worst pair's matches."""

    report: dict
    distances: np.ndarray  # the verified matches' Sampson distances, scored pairs pooled
    worst: PairDetail | None = None
    scene: Scene | None = field(default=None, repr=False)
    all_distances: np.ndarray = field(default_factory=lambda: np.zeros(0))  # every distinct match's, pooled likewise


def sample_frames(num_frames: int, count: int) -> list[int]:
    """``count`` time steps spread evenly over ``num_frames`` (all of them if there are fewer)."""
    return sorted({round(x) for x in np.linspace(0, num_frames - 1, min(count, num_frames))})


def check_intrinsics(intrinsics: Intrinsics, where: str) -> None:
    """EvaluationError unless ``intrinsics`` could belong to a camera (principal point inside the image, pixels
    within ``MAX_PIXEL_ASPECT`` of square, field of view within ``FIELD_OF_VIEW_DEG``)."""
    k = intrinsics
    if not (0.0 < k.cx < k.width and 0.0 < k.cy < k.height):
        raise EvaluationError(f"{where}: the principal point ({k.cx:g}, {k.cy:g}) lies outside the {k.width}x{k.height}"
                              " image; give cx, cy in pixels of the stored videos (about width / 2, height / 2)")
    if not 1.0 / MAX_PIXEL_ASPECT <= k.fx / k.fy <= MAX_PIXEL_ASPECT:
        raise EvaluationError(f"{where}: fx = {k.fx:g} and fy = {k.fy:g} describe pixels {k.fx / k.fy:.3g} times wider"
                              " than tall; give both focal lengths in pixels of the stored videos")
    low, high = FIELD_OF_VIEW_DEG
    for size, focal, axis in ((k.width, k.fx, "horizontal"), (k.height, k.fy, "vertical")):
        fov = math.degrees(2.0 * math.atan(size / (2.0 * focal)))
        if not low <= fov <= high:
            raise EvaluationError(f"{where}: focal length {focal:g} px gives a {axis} field of view of {fov:.3g} deg "
                                  f"(outside {low:g}-{high:g}); give focal lengths in pixels of the stored videos")


def resolve_intrinsics(
    scene: Scene, intrinsics: Intrinsics | None = None, focal_per_side: float | None = None
) -> tuple[Intrinsics, str]:
    """The pixel intrinsics to score ``scene`` with, and where they came from (EvaluationError if impossible).

    Order: ``intrinsics`` given by the caller, then the scene's own ``intrinsics.json``, then the training formula
    (docs/architecture.md, section 2.2) fx = fy = focal_per_side * max(W, H) with the released model's 24 / 23.76 by
    default.
    """
    height, width = scene.videos[0].shape[1:3]
    if intrinsics is not None:
        check_intrinsics(intrinsics, "the given intrinsics")
        if (intrinsics.width, intrinsics.height) != (width, height):
            intrinsics = intrinsics.scaled(width, height)
        resolved, source = intrinsics, "given"
    elif scene.intrinsics is not None:
        resolved, source = scene.intrinsics, "scene"
    elif focal_per_side is not None:
        resolved, source = Intrinsics.centered(width, height, focal_per_side), f"focal_per_side={focal_per_side:g}"
    else:
        resolved, source = Intrinsics.training(width, height), "training formula"
    check_intrinsics(resolved, f"the intrinsics ({source})")
    return resolved, source


def _stats(distances: np.ndarray) -> dict | None:
    """Median / mean Sampson distance, shares under the thresholds and the number of matches; None without any."""
    if len(distances) == 0:
        return None
    stats = {"median_px": float(np.median(distances)), "mean_px": float(np.mean(distances))}
    for threshold in THRESHOLDS_PX:
        stats[f"under_{threshold:g}px"] = float(np.mean(distances < threshold))
    stats["num_matches"] = len(distances)
    return stats


def geometric_mean(scores: Sequence[float]) -> float:
    """exp(mean(log(scores))) of positive scores."""
    return float(np.exp(np.mean(np.log(scores))))


def _mean(values: Sequence[float | None]) -> float | None:
    defined = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(defined)) if defined else None


@dataclass
class PooledMatches:
    """The matches of one pair over one group of frames: every match (N, 2) <-> (N, 2) in frame order, each match's
    representative (``first``, see ``distinct_matches``) and the (D,) indices of the distinct ones."""

    points_a: np.ndarray
    points_b: np.ndarray
    first: np.ndarray
    distinct: np.ndarray

    @classmethod
    def of(cls, frame_matches: list[Matches]) -> PooledMatches:
        points_a = np.concatenate([m.points_a for m in frame_matches])  # (N, 2) every match of the group
        points_b = np.concatenate([m.points_b for m in frame_matches])
        first = distinct_matches(points_a, points_b)
        return cls(points_a, points_b, first, np.unique(first))

    def distinct_points(self) -> tuple[np.ndarray, np.ndarray]:
        return self.points_a[self.distinct], self.points_b[self.distinct]


def _score_group(
    pool: PooledMatches,
    estimate: PoseEstimate,
    c2w_a: np.ndarray,
    c2w_b: np.ndarray,
    intrinsics: Intrinsics,
    ransac_px: float,
    chance_px: float,
) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """One pair over one group of frames sharing a geometry: verification, epipolar error, pose errors.

    Returns the group's record, its verified and all distinct matches' distances, each pooled match's verified flag,
    and the requested fundamental matrix (None without epipolar geometry).
    """
    points_a, points_b = pool.distinct_points()
    fit = fit_matches(points_a, points_b, ransac_px)
    verified_flags = fit.verified[np.searchsorted(pool.distinct, pool.first)]  # each match takes its representative's
    try:
        fundamental = fundamental_from_cameras(c2w_a, intrinsics, c2w_b, intrinsics)
    except GeometryError:
        fundamental = None
    distances = verified = np.zeros(0)
    if fundamental is not None and len(points_a):
        distances = epipolar_distances(fundamental, points_a, points_b)["sampson"]
        verified = distances[fit.verified]
    median = float(np.median(verified)) if len(verified) else None
    record = {
        "distinct_matches": len(points_a),
        "verified": int(fit.verified.sum()),
        "median_px": median,
        "score_px": chance_px if median is None else float(np.clip(median, FLOOR_PX, chance_px)),
        "pose_inliers": estimate.inliers,
        "pose_spread_deg": estimate.spread_deg,
        "pose_na_reason": estimate.reason,
        **pose_errors(estimate, *relative_pose(c2w_a, c2w_b)),
    }
    return record, verified, distances, verified_flags, fundamental


def evaluate_scene(
    scene: Scene,
    settings: EvaluationSettings | None = None,
    intrinsics: Intrinsics | None = None,
    focal_per_side: float | None = None,
    name: str = "scene",
    progress: bool = False,
    matcher: SiftMatcher | LearnedMatcher | None = None,
) -> SceneEvaluation:
    """Scores every view pair of ``scene`` (module docstring); EvaluationError if it cannot be scored.

    ``matcher`` defaults to SIFT with the settings' ratio and RANSAC threshold; a ``LearnedMatcher`` replaces it.
    """
    settings = settings or EvaluationSettings()
    # 1. Check inputs.
    num_views = scene.rig.num_views
    if num_views < 2:
        raise EvaluationError(f"{name} has {num_views} view; cross-view consistency needs at least two views")
    num_frames, height, width, _ = scene.videos[0].shape
    intrinsics, intrinsics_source = resolve_intrinsics(scene, intrinsics, focal_per_side)
    frames = sample_frames(num_frames, settings.frames)
    # Static cameras: one geometry, every sampled frame pooled; moving cameras: one group per sampled frame.
    groups = [frames] if scene.rig.is_static else [[t] for t in frames]
    matcher = matcher or SiftMatcher(settings.ratio, settings.ransac_px)
    poses = PoseEstimator(settings.pose_estimator, settings.ransac_px)
    chance_px = CHANCE_FRACTION * max(width, height)

    # 2. Features once per (view, sampled frame); motion curves once per view.
    features: list[dict[int, Features | np.ndarray]] = [
        {t: matcher.detect(video[t]) for t in frames} for video in scene.videos
    ]
    curves = [motion_energy(video) for video in scene.videos]

    # 3. Matches of every pair at every sampled frame.
    pair_list = list(itertools.combinations(range(num_views), 2))
    matches = {
        (a, b): {t: matcher.match(features[a][t], features[b][t]) for t in frames}
        for a, b in tqdm(pair_list, desc=f"evaluate {name}", unit="pair", disable=not progress, leave=False)
    }

    # 4. Each group of frames: every pair's matches pooled, then the poses of all views from them together.
    pools = [{pair: PooledMatches.of([matches[pair][t] for t in group]) for pair in pair_list} for group in groups]
    estimates = [poses.estimate_views({pair: pool.distinct_points() for pair, pool in group_pools.items()},
                                      intrinsics, scene.rig.names) for group_pools in pools]

    # 5. Every pair: per group verification, epipolar error and pose errors.
    pairs, pooled, pooled_all, details = [], [], [], []
    for a, b in pair_list:
        records, pair_verified, pair_all, best = [], [], [], None
        for group, group_pools, group_estimates in zip(groups, pools, estimates, strict=True):
            c2w = scene.rig.c2w_at(group[0])
            record, verified, distances, flags, fundamental = _score_group(
                group_pools[(a, b)], group_estimates[(a, b)], c2w[a], c2w[b], intrinsics, settings.ransac_px,
                chance_px)
            records.append({"frames": group, **record})
            pair_verified.append(verified)
            pair_all.append(distances)
            # The plot's frame: the group's frame with the most matches, marked with the group's verification.
            offsets = np.cumsum([0] + [len(matches[(a, b)][t].points_a) for t in group])
            for k, t in enumerate(group):
                frame = matches[(a, b)][t]
                if best is None or len(frame.points_a) > len(best.matches.points_a):
                    shown = Matches(frame.points_a, frame.points_b, frame.inliers, flags[offsets[k]:offsets[k + 1]])
                    frame_distances = None
                    if fundamental is not None:
                        frame_distances = epipolar_distances(fundamental, frame.points_a, frame.points_b)["sampson"]
                    best = PairDetail((a, b), t, shown, fundamental, frame_distances)
        pooled.append(np.concatenate(pair_verified))
        pooled_all.append(np.concatenate(pair_all))
        estimated = [r for r in records if r["rot_err_deg"] is not None]
        pair = {
            "views": [scene.rig.names[a], scene.rig.names[b]],
            "scored": any(r["median_px"] is not None for r in records),
            "epipolar_px": geometric_mean([r["score_px"] for r in records]),
            "pose_estimated": bool(estimated),
            "rot_err_deg": _mean([r["rot_err_deg"] for r in estimated]),
            "trans_err": _mean([r["trans_err"] for r in estimated]),
            "trans_err_deg": _mean([r["trans_err_deg"] for r in estimated]),
            "mat_pix": _mean([m.matched_pixels for m in matches[(a, b)].values()]),
            "matches_per_frame": _mean([len(m.inliers) for m in matches[(a, b)].values()]),
            "distinct_matches": sum(r["distinct_matches"] for r in records),
            "verified": sum(r["verified"] for r in records),
            "epipolar": _stats(pooled[-1]),
            "epipolar_all": _stats(pooled_all[-1]),
            "sync": sync_score(curves[a], curves[b], settings.max_lag),
            "groups": records,
        }
        pairs.append(pair)
        details.append(best)

    # 4. Scene summary: every pair counts in the headline and the coverage.
    synced = [p["sync"] for p in pairs if p["sync"]["best_lag"] is not None]
    # The worst pair: the highest headline score; among equals, the one with the fewest verified matches.
    worst = max(range(len(pairs)), key=lambda i: (pairs[i]["epipolar_px"], -pairs[i]["verified"]))
    summary = {
        **pair_measures(pairs),
        "chance_px": chance_px,
        "epipolar": _stats(np.concatenate(pooled)),
        "epipolar_all": _stats(np.concatenate(pooled_all)),
        "sync_corr": _mean([s["corr"] for s in synced]),
        "sync_lag0_share": float(np.mean([s["best_lag"] == 0 for s in synced])) if synced else None,
        "worst_pair": pairs[worst]["views"],
    }
    report = {
        "scene": name,
        "views": scene.rig.names,
        "num_frames": num_frames,
        "width": width,
        "height": height,
        "prompt": scene.prompt,
        "matcher": matcher.describe(),
        "pose_estimator": poses.describe(),
        "static_cameras": scene.rig.is_static,
        "min_verified_matches": MIN_VERIFIED_MATCHES,
        "intrinsics": {"source": intrinsics_source, "fx": intrinsics.fx, "fy": intrinsics.fy,
                       "cx": intrinsics.cx, "cy": intrinsics.cy},
        "sampled_frames": frames,
        "summary": summary,
        "pairs": pairs,
    }
    return SceneEvaluation(report, np.concatenate(pooled), details[worst], scene, np.concatenate(pooled_all))


def evaluate_scene_dir(path: str | Path, settings: EvaluationSettings | None = None, **kwargs) -> SceneEvaluation:
    """``evaluate_scene`` on a scene folder (docs/architecture.md, section 3.1); SceneError / CameraError if it cannot
    be read."""
    path = Path(path)
    return evaluate_scene(Scene.read(path), settings, name=kwargs.pop("name", str(path)), **kwargs)


def pair_measures(pairs: Sequence[dict]) -> dict:
    """The measures taken over pairs, one scene's or several scenes' alike: the headline over every pair (an unscored
    pair at chance), its coverage, the pose errors over the posed pairs with their coverage, and the match counts."""
    scored = sum(p["scored"] for p in pairs)
    estimated = [p for p in pairs if p["pose_estimated"]]
    return {
        "pairs": len(pairs),
        "pairs_scored": scored,
        "coverage": scored / len(pairs) if pairs else None,
        "epipolar_px": geometric_mean([p["epipolar_px"] for p in pairs]) if pairs else None,
        "pairs_posed": len(estimated),
        "pose_coverage": len(estimated) / len(pairs) if pairs else None,
        "rot_err_deg": _mean([p["rot_err_deg"] for p in estimated]),
        "trans_err": _mean([p["trans_err"] for p in estimated]),
        "trans_err_deg": _mean([p["trans_err_deg"] for p in estimated]),
        "mat_pix": _mean([p["mat_pix"] for p in pairs]),
        "matches_per_frame": _mean([p["matches_per_frame"] for p in pairs]),
        "distinct_matches": _mean([p["distinct_matches"] for p in pairs]),
        "verified": _mean([p["verified"] for p in pairs]),
    }


def summarize(evaluations: Sequence[SceneEvaluation]) -> dict:
    """Scores of several scenes together: the headline and the per-pair measures over every pair of every scene
    (n/a counting as in one scene), the verified matches pooled, means of the per-scene synchronization."""
    summaries = [e.report["summary"] for e in evaluations]
    pairs = [p for e in evaluations for p in e.report["pairs"]]
    distances = np.concatenate([np.zeros(0)] + [e.distances for e in evaluations])
    all_distances = np.concatenate([np.zeros(0)] + [e.all_distances for e in evaluations])
    return {
        "scenes": len(evaluations),
        **pair_measures(pairs),
        "epipolar": _stats(distances),
        "epipolar_all": _stats(all_distances),
        "sync_corr": _mean([s["sync_corr"] for s in summaries]),
        "sync_lag0_share": _mean([s["sync_lag0_share"] for s in summaries]),
    }
