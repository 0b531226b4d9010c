"""Why a two-view pose misses the requested one on a render: matches against the render's depth, and the pose fitted
several ways from the same matches.

For each pair of a rendered scene (``syncammaster render`` writes each view's depth), the SIFT matches of the sampled
frames are pooled as ``evaluate`` pools them. Each match's point in view a is sent through the rendered depth (bilinear,
skipped within 2 % depth steps) and the scene's intrinsics into view b; its distance to the match's point in view b is
the match's true error. Columns:

- ``within 1 px``: matches whose true error is under a pixel (correct matches), ``median px`` / ``offset px`` their
  median error and the length of their mean error vector (a bias of the renderer's camera would show there);
- ``two-view``: RotErr (degrees) of COLMAP's two-view fit to all the matches (``--pose-estimator colmap-pairs``,
  before its stability gate);
- ``correct only``: the same fit to the correct matches alone;
- ``exact``: the same fit to the exact projections of the correct matches' points ("planar" when COLMAP finds no
  calibrated geometry in them; "-" with fewer than ``MIN_POSE_INLIERS`` correct matches, as the next column);
- ``i.i.d. noise``: median over ``NOISE_DRAWS`` fits to the exact projections plus independent Gaussian noise of
  ``NOISE_PX`` px (split over both views), and how many draws had no calibrated fit;
- ``one reconstruction``: RotErr of ``evaluate``'s default pose (one COLMAP reconstruction of all views, gated), "-"
  where that pair is not posed.

Run from the repository root on a rendered scene folder (or a dataset folder: every scene):

    python benchmarks/pose_diagnosis.py RENDERS/train/procedural/scene0002 --pairs cam01-cam04 cam02-cam04
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from pathlib import Path

import numpy as np

from syncammaster.evaluate import EvaluationSettings, evaluate_scene
from syncammaster.evaluate.consistency import PooledMatches, sample_frames
from syncammaster.evaluate.matching import SiftMatcher
from syncammaster.evaluate.poses import MIN_POSE_INLIERS, PoseEstimator, relative_pose, rotation_angle_deg
from syncammaster.evaluate.report import text_table
from syncammaster.scene import Scene

from harness import add_results_argument, machine_line, markdown_table, write_results

NOISE_PX = 0.25
NOISE_DRAWS = 10
DEPTH_STEP = 0.02  # relative depth spread of the four pixels around a point above which its depth is not trusted


def depth_at(depth: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N,) bilinear depth (T-free (H, W) map) at (N, 2) points (pixel centres at +0.5); NaN off the map or across a
    depth step."""
    x, y = points[:, 0] - 0.5, points[:, 1] - 0.5
    height, width = depth.shape
    x0 = np.clip(np.floor(x).astype(int), 0, width - 2)
    y0 = np.clip(np.floor(y).astype(int), 0, height - 2)
    corners = np.stack([depth[y0, x0], depth[y0, x0 + 1], depth[y0 + 1, x0], depth[y0 + 1, x0 + 1]], axis=1)  # (N, 4)
    fx, fy = x - x0, y - y0
    value = (corners[:, 0] * (1 - fx) * (1 - fy) + corners[:, 1] * fx * (1 - fy)
             + corners[:, 2] * (1 - fx) * fy + corners[:, 3] * fx * fy)
    with np.errstate(invalid="ignore"):
        smooth = np.isfinite(corners).all(1) & ((corners.max(1) - corners.min(1)) < DEPTH_STEP * corners.min(1))
    inside = (x >= 0) & (y >= 0) & (x < width - 1) & (y < height - 1)
    return np.where(smooth & inside, value, np.nan)


def fit_error(estimator: PoseEstimator, points_a, points_b, intrinsics, rotation: np.ndarray, seed: int = 0):
    fitted, _, _ = estimator._fit(points_a, points_b, intrinsics, seed)
    return None if fitted is None else rotation_angle_deg(fitted @ rotation.T)


def fmt(value, digits: int = 2) -> str:
    return "-" if value is None else value if isinstance(value, str) else f"{value:.{digits}f}"


def diagnose(scene_dir: Path, wanted: list[str] | None, frames: int) -> list[list[str]]:
    scene = Scene.read(scene_dir)
    names, intrinsics = scene.rig.names, scene.intrinsics
    depth = [np.load(scene_dir / "depth" / f"{name}.npz")["depth"] for name in names]  # V x (T, H, W)
    sampled = sample_frames(len(scene.videos[0]), frames)
    matcher, pairs_fit = SiftMatcher(), PoseEstimator("colmap-pairs")
    features = [{t: matcher.detect(video[t]) for t in sampled} for video in scene.videos]
    joint = {tuple(p["views"]): p for p in evaluate_scene(scene, EvaluationSettings(frames=frames)).report["pairs"]}
    rng, rows = np.random.default_rng(0), []
    for a, b in itertools.combinations(range(len(names)), 2):
        label = f"{names[a]}-{names[b]}"
        if wanted and label not in wanted:
            continue
        frame_matches = [matcher.match(features[a][t], features[b][t]) for t in sampled]
        pool = PooledMatches.of(frame_matches)
        points_a, points_b = pool.distinct_points()
        times = np.concatenate([np.full(len(m.points_a), t) for m, t in zip(frame_matches, sampled, strict=True)])
        times = times[pool.distinct]
        rotation, translation = relative_pose(scene.rig.c2w[a], scene.rig.c2w[b])
        # Each match's point in view a, through the depth of its frame, into view b.
        z = np.full(len(points_a), np.nan)
        for t in sampled:
            here = times == t
            z[here] = depth_at(depth[a][t], points_a[here])
        rays = np.linalg.solve(intrinsics.K, np.concatenate([points_a, np.ones((len(points_a), 1))], 1).T).T  # (N, 3)
        in_b = (rays * z[:, None]) @ rotation.T + translation  # (N, 3) camera b coordinates
        projected = (in_b @ intrinsics.K.T)[:, :2] / in_b[:, 2:3]  # (N, 2)
        error = np.linalg.norm(projected - points_b, axis=1)  # NaN where the depth is not trusted
        correct = np.nan_to_num(error, nan=np.inf) < 1.0
        offset = float(np.linalg.norm(np.mean((points_b - projected)[correct], axis=0))) if correct.any() else None
        noisy, planar = [], 0
        for draw in range(NOISE_DRAWS if correct.sum() >= MIN_POSE_INLIERS else 0):
            noise = rng.normal(scale=NOISE_PX / math.sqrt(2), size=(2, int(correct.sum()), 2))
            value = fit_error(pairs_fit, points_a[correct] + noise[0], projected[correct] + noise[1], intrinsics,
                              rotation, draw)
            planar += value is None
            noisy.append(value)
        noisy = [v for v in noisy if v is not None]
        exact = "-"
        if correct.sum() >= MIN_POSE_INLIERS:
            exact = fit_error(pairs_fit, points_a[correct], projected[correct], intrinsics, rotation)
            exact = "planar" if exact is None else exact
        pair = joint[(names[a], names[b])]
        rows.append([
            f"{scene_dir.name} {label}", str(len(points_a)), str(int(correct.sum())),
            fmt(float(np.median(error[correct])) if correct.any() else None), fmt(offset),
            fmt(fit_error(pairs_fit, points_a, points_b, intrinsics, rotation)),
            fmt(fit_error(pairs_fit, points_a[correct], points_b[correct], intrinsics, rotation)),
            fmt(exact, 3),
            f"{fmt(float(np.median(noisy)) if noisy else None)} ({planar} planar)" if correct.sum() >= MIN_POSE_INLIERS
            else "-",
            fmt(pair["rot_err_deg"]),
        ])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenes", nargs="+", help="rendered scene folders (with depth/), or folders holding them")
    parser.add_argument("--pairs", nargs="+", default=None, metavar="camA-camB", help="only these pairs")
    parser.add_argument("--frames", type=int, default=8, help="sampled frames, as evaluate --frames (default 8)")
    add_results_argument(parser)
    args = parser.parse_args()
    machine = machine_line()
    header = ["scene pair", "matches", "within 1 px", "median px", "offset px", "two-view", "correct only", "exact",
              f"i.i.d. noise {NOISE_PX:g} px", "one reconstruction"]
    rows = [header]
    for path in map(Path, args.scenes):
        folders = [path] if (path / "depth").is_dir() else sorted(p.parent for p in path.glob("**/depth"))
        if not folders:
            sys.exit(f"{path} holds no rendered scene (no depth/ folder); render one with syncammaster render")
        for folder in folders:
            rows += diagnose(folder, args.pairs, args.frames)
            print(text_table([header, *rows[-1:]]) if len(rows) > 1 else "", flush=True)
    print(text_table(rows))
    print()
    print(markdown_table(rows))
    if args.results:
        write_results("pose_diagnosis.py", markdown_table(rows), machine, "none (ground-truth renders)")


if __name__ == "__main__":
    main()
