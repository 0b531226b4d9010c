"""Cross-view consistency of one scene folder (generated, rendered or real) with the cameras it claims.

For every pair of views (a, b) and a set of time steps sampled evenly over the clip:

1. SIFT features of both frames, Lowe's ratio test -> matches (:mod:`.matching`; or a learned matcher from a local
   folder); the matches that a fundamental matrix fitted to them by RANSAC keeps give "matched pixels", the paper's
   measure of how much two views agree with each other.
2. Geometric verification: the matches that a fundamental matrix fitted to them by MAGSAC++ explains, when at least
   ``MIN_VERIFIED_MATCHES`` do ("verified"). It looks at the matches alone, not at the cameras.
3. The fundamental matrix implied by the scene's extrinsics and intrinsics (:mod:`.geometry`); the Sampson distance
   of each match to it, in pixels. The headline (``epipolar``) scores the verified matches only: views that show one
   3-D scene from the *requested* cameras put them on their epipolar lines (median well under a pixel for renders);
   views that agree with each other but not with the cameras do not. ``epipolar_all`` scores every ratio-tested
   match; repetitive textures (a brick wall) give false matches that put even ground truth several pixels off, so it
   is kept as a secondary figure. Where no frame of a pair has a verified consensus, the headline is None (n/a).
4. Motion-energy curves of the two whole videos, compared over time (:mod:`.sync`).

Scores are pooled over frames per pair, and over pairs per scene.
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
)
from .sync import DEFAULT_MAX_LAG, motion_energy, sync_score

DEFAULT_SAMPLED_FRAMES = 8
THRESHOLDS_PX = (1.0, 3.0)  # shares of matches within these epipolar distances are reported


class EvaluationError(ValueError):
    """A scene that cannot be evaluated (one view, missing cameras, bad settings)."""


@dataclass
class EvaluationSettings:
    """How scenes are scored.

    Attributes:
        frames: time steps sampled evenly over the clip (first and last included) for feature matching.
        ratio: Lowe's ratio-test threshold.
        ransac_px: inlier threshold of the fits to the matches (RANSAC behind "matched pixels", MAGSAC++ behind the
            verified matches).
        max_lag: largest lag (frames) searched by the synchronization score.
    """

    frames: int = DEFAULT_SAMPLED_FRAMES
    ratio: float = DEFAULT_RATIO
    ransac_px: float = DEFAULT_RANSAC_PX
    max_lag: int = DEFAULT_MAX_LAG

    def __post_init__(self) -> None:
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) or self.frames < 1:
            raise EvaluationError(f"the number of sampled frames must be a positive integer, got {self.frames!r}")
        if isinstance(self.max_lag, bool) or not isinstance(self.max_lag, int) or self.max_lag < 0:
            raise EvaluationError(f"the largest lag must be a non-negative integer, got {self.max_lag!r}")


@dataclass
class PairDetail:
    """What the worst-pair plot needs: one pair at its best-matched sampled frame (most verified matches)."""

    views: tuple[int, int]
    frame: int
    matches: Matches
    fundamental: np.ndarray | None
    distances: np.ndarray | None  # (N,) Sampson distance of every match of that frame

    def rank(self) -> tuple[int, int]:
        return int(self.matches.verified.sum()), len(self.matches.verified)


@dataclass
class SceneEvaluation:
    """The scores of one scene: ``report`` (JSON-ready) plus the distances behind it and the worst pair's matches."""

    report: dict
    distances: np.ndarray  # the verified matches' Sampson distances (the headline), all pairs and frames pooled
    worst: PairDetail | None = None
    scene: Scene | None = field(default=None, repr=False)
    all_distances: np.ndarray = field(default_factory=lambda: np.zeros(0))  # every match's, pooled likewise


def sample_frames(num_frames: int, count: int) -> list[int]:
    """``count`` time steps spread evenly over ``num_frames`` (all of them if there are fewer)."""
    return sorted({round(x) for x in np.linspace(0, num_frames - 1, min(count, num_frames))})


def resolve_intrinsics(
    scene: Scene, intrinsics: Intrinsics | None = None, focal_per_side: float | None = None
) -> tuple[Intrinsics, str]:
    """The pixel intrinsics to score ``scene`` with, and where they came from.

    Order: ``intrinsics`` given by the caller, then the scene's own ``intrinsics.json``, then the training formula
    (docs/architecture.md, section 2.2) fx = fy = focal_per_side * max(W, H) with the released model's 24 / 23.76 by
    default.
    """
    height, width = scene.videos[0].shape[1:3]
    if intrinsics is not None:
        if (intrinsics.width, intrinsics.height) != (width, height):
            intrinsics = intrinsics.scaled(width, height)
        return intrinsics, "given"
    if scene.intrinsics is not None:
        return scene.intrinsics, "scene"
    if focal_per_side is not None:
        return Intrinsics.centered(width, height, focal_per_side), f"focal_per_side={focal_per_side:g}"
    return Intrinsics.training(width, height), "training formula"


def _stats(distances: np.ndarray) -> dict | None:
    """Median / mean Sampson distance, shares under the thresholds and the number of matches; None without any."""
    if len(distances) == 0:
        return None
    stats = {"median_px": float(np.median(distances)), "mean_px": float(np.mean(distances))}
    for threshold in THRESHOLDS_PX:
        stats[f"under_{threshold:g}px"] = float(np.mean(distances < threshold))
    stats["num_matches"] = len(distances)
    return stats


def _median(distances: np.ndarray) -> float | None:
    return float(np.median(distances)) if len(distances) else None


def _mean(values: Sequence[float | None]) -> float | None:
    defined = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(defined)) if defined else None


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
    matcher = matcher or SiftMatcher(settings.ratio, settings.ransac_px)

    # 2. Features once per (view, sampled frame); motion curves once per view.
    features: list[dict[int, Features | np.ndarray]] = [
        {t: matcher.detect(video[t]) for t in frames} for video in scene.videos
    ]
    curves = [motion_energy(video) for video in scene.videos]

    # 3. Every pair: matches and epipolar distances per frame, then the synchronization score.
    pairs, pooled, pooled_all, worst, worst_key = [], [], [], None, None
    pair_list = list(itertools.combinations(range(num_views), 2))
    for a, b in tqdm(pair_list, desc=f"evaluate {name}", unit="pair", disable=not progress, leave=False):
        per_frame, pair_distances, pair_all, best = [], [], [], None
        for t in frames:
            c2w = scene.rig.c2w_at(t)
            try:
                fundamental = fundamental_from_cameras(c2w[a], intrinsics, c2w[b], intrinsics)
            except GeometryError:
                fundamental = None
            matches = matcher.match(features[a][t], features[b][t])
            distances = None
            if fundamental is not None:
                distances = epipolar_distances(fundamental, matches.points_a, matches.points_b)["sampson"]
                pair_all.append(distances)
                pair_distances.append(distances[matches.verified])
            per_frame.append({
                "frame": t,
                "matches": len(matches.inliers),
                "inliers": int(matches.inliers.sum()),
                "verified": int(matches.verified.sum()),
                "matched_pixels": matches.matched_pixels,
                "median_px": _median(distances[matches.verified]) if distances is not None else None,
                "median_all_px": _median(distances) if distances is not None else None,
            })
            detail = PairDetail((a, b), t, matches, fundamental, distances)
            if best is None or detail.rank() > best.rank():
                best = detail
        pooled.append(np.concatenate(pair_distances) if pair_distances else np.zeros(0))
        pooled_all.append(np.concatenate(pair_all) if pair_all else np.zeros(0))
        epipolar, epipolar_all = _stats(pooled[-1]), _stats(pooled_all[-1])
        pair = {
            "views": [scene.rig.names[a], scene.rig.names[b]],
            "matches_per_frame": _mean([f["matches"] for f in per_frame]),
            "verified_per_frame": _mean([f["verified"] for f in per_frame]),
            "matched_pixels_per_frame": _mean([f["matched_pixels"] for f in per_frame]),
            "epipolar": epipolar,
            "epipolar_all": epipolar_all,
            "epipolar_defined": len(pair_distances) == len(frames),
            "sync": sync_score(curves[a], curves[b], settings.max_lag),
            "frames": per_frame,
        }
        pairs.append(pair)
        # The worst pair: the largest headline median; among pairs without one, the largest median of all matches.
        if epipolar_all is not None:
            key = (epipolar is not None, (epipolar or epipolar_all)["median_px"])
            if worst_key is None or key > worst_key:
                worst, worst_key = best, key

    # 4. Scene summary: matches pooled over pairs and frames.
    distances, all_distances = np.concatenate(pooled), np.concatenate(pooled_all)
    synced = [p["sync"] for p in pairs if p["sync"]["best_lag"] is not None]
    summary = {
        "pairs": len(pairs),
        "matches_per_frame": _mean([p["matches_per_frame"] for p in pairs]),
        "verified_per_frame": _mean([p["verified_per_frame"] for p in pairs]),
        "matched_pixels_per_frame": _mean([p["matched_pixels_per_frame"] for p in pairs]),
        "epipolar": _stats(distances),
        "epipolar_all": _stats(all_distances),
        "sync_corr": _mean([s["corr"] for s in synced]),
        "sync_lag0_share": float(np.mean([s["best_lag"] == 0 for s in synced])) if synced else None,
        "worst_pair": pairs[pair_list.index(worst.views)]["views"] if worst is not None else None,
    }
    report = {
        "scene": name,
        "views": scene.rig.names,
        "num_frames": num_frames,
        "width": width,
        "height": height,
        "prompt": scene.prompt,
        "matcher": matcher.describe(),
        "min_verified_matches": MIN_VERIFIED_MATCHES,
        "intrinsics": {"source": intrinsics_source, "fx": intrinsics.fx, "fy": intrinsics.fy,
                       "cx": intrinsics.cx, "cy": intrinsics.cy},
        "sampled_frames": frames,
        "summary": summary,
        "pairs": pairs,
    }
    return SceneEvaluation(report, distances, worst, scene, all_distances)


def evaluate_scene_dir(path: str | Path, settings: EvaluationSettings | None = None, **kwargs) -> SceneEvaluation:
    """``evaluate_scene`` on a scene folder (docs/architecture.md, section 3.1); SceneError / CameraError if it cannot
    be read."""
    path = Path(path)
    return evaluate_scene(Scene.read(path), settings, name=kwargs.pop("name", str(path)), **kwargs)


def summarize(evaluations: Sequence[SceneEvaluation]) -> dict:
    """Scores of several scenes together: matches pooled over all of them, means of the per-scene numbers."""
    summaries = [e.report["summary"] for e in evaluations]
    distances = np.concatenate([np.zeros(0)] + [e.distances for e in evaluations])
    all_distances = np.concatenate([np.zeros(0)] + [e.all_distances for e in evaluations])
    return {
        "scenes": len(evaluations),
        "matches_per_frame": _mean([s["matches_per_frame"] for s in summaries]),
        "verified_per_frame": _mean([s["verified_per_frame"] for s in summaries]),
        "matched_pixels_per_frame": _mean([s["matched_pixels_per_frame"] for s in summaries]),
        "epipolar": _stats(distances),
        "epipolar_all": _stats(all_distances),
        "sync_corr": _mean([s["sync_corr"] for s in summaries]),
        "sync_lag0_share": _mean([s["sync_lag0_share"] for s in summaries]),
    }
