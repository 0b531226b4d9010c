"""Evaluation output: a terminal table, the JSON file and the worst pair's match plot."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..atomic import write_atomically
from .consistency import SceneEvaluation
from .geometry import epipolar_lines
from .matching import MIN_VERIFIED_MATCHES

PLOT_MAX_LINES = 40  # epipolar lines drawn in the worst-pair plot (the rest of the matches are drawn as points)
PLOT_COLOURS = (("tab:green", 1.0), ("gold", 3.0), ("tab:red", np.inf))  # match colour by Sampson distance (px)


def _fmt(value, digits: int = 2, percent: bool = False) -> str:
    if value is None:
        return "-"
    if percent:
        return f"{100 * value:.0f}%"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{value:.{digits}f}"


def text_table(rows: Sequence[Sequence[str]]) -> str:
    """``rows[0]`` as the header, a rule, then the other rows; first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join([row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)])
        for row in rows
    ]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


FVD_V_MISSING = ("no --fvd FILE given (a local TorchScript video network such as FVD's I3D, with --fvd-reference "
                 "scenes to compare with)")
CLIP_V_MISSING = "no --clip DIR given"

# The table's columns: the camera-control papers' names (SynCamMaster, ReCamMaster, CameraCtrl) beside the project's
# epipolar and synchronization measures, each with its meaning and unit (printed under the table, written to JSON).
LEGEND = {
    "Epi px": "headline: Sampson distance (px) of the verified matches to the requested cameras' epipolar lines, "
              "median per pair, capped at chance (0.2 x the longer image side); a pair without a verified consensus "
              "scores chance; geometric mean over all pairs (lower is better)",
    "coverage": "pairs with a verified consensus of >= {min_verified} distinct matches / all pairs (matches of all "
                "sampled frames pooled for static cameras)",
    "RotErr": "angle (deg) between estimated and requested relative rotation, mean over posed pairs (CameraCtrl)",
    "TransErr": "L2 distance between estimated and requested relative translation, both scaled to unit length "
                "(0-2; 2 sin of half the angle between directions), mean over posed pairs (CameraCtrl)",
    "posed": "pairs whose relative pose was estimated stably (both views registered in the reconstruction of all "
             "views, or a stable two-view fit with --pose-estimator colmap-pairs / opencv) / all pairs",
    "Mat. Pix.": "matched pixels per frame pair: distinct pixels of view a with a match that a RANSAC fundamental "
                 "matrix keeps (SIFT, or the --matcher model's confident matches)",
    "CLIP-V": "100 x CLIP cosine similarity of two views at the same time step, mean over pairs and sampled frames",
    "FVD-V": "Frechet video distance of clips running across the views at one time step, all scenes given against "
             "the --fvd-reference scenes (one value for the set; lower is better)",
    "sync": "correlation of the two views' motion-energy curves at lag 0 (-1 to 1)",
    "lag0": "share of pairs (scene rows) whose motion curves peak at lag 0, or the pair's best lag in frames",
}
COLUMNS = tuple(LEGEND)


def _fraction(count: int, total: int) -> str:
    return f"{count}/{total}"


def paper_row(numbers: dict, clip: dict | None = None, fvd_v: float | None = None) -> dict:
    """The table's columns (``LEGEND``) of one scene summary, a pair, or a summary of several scenes: JSON-ready
    values, None where a measure is empty."""
    is_pair = "views" in numbers
    return {
        "Epi px": numbers["epipolar_px"],
        "coverage": float(numbers["scored"]) if is_pair else numbers["coverage"],
        "RotErr": numbers["rot_err_deg"],
        "TransErr": numbers["trans_err"],
        "posed": float(numbers["pose_estimated"]) if is_pair else numbers["pose_coverage"],
        "Mat. Pix.": numbers["mat_pix"],
        "CLIP-V": (clip or {}).get("clip_v"),
        "FVD-V": fvd_v,
        "sync": numbers["sync"]["corr"] if is_pair else numbers["sync_corr"],
        "lag0": numbers["sync"]["best_lag"] if is_pair else numbers["sync_lag0_share"],
    }


def _cells(numbers: dict, clip: dict | None, fvd_v: float | None = None) -> list[str]:
    row = paper_row(numbers, clip, fvd_v)
    if "views" in numbers:
        coverage = "yes" if numbers["scored"] else "n/a"
        posed = "yes" if numbers["pose_estimated"] else "n/a"
        lag = "-" if row["lag0"] is None else f"{row['lag0']:+d}"
    else:
        coverage = _fraction(numbers["pairs_scored"], numbers["pairs"])
        posed = _fraction(numbers["pairs_posed"], numbers["pairs"])
        lag = _fmt(row["lag0"], percent=True)
    return [
        _fmt(row["Epi px"]), coverage, _fmt(row["RotErr"]), _fmt(row["TransErr"], 3), posed,
        _fmt(row["Mat. Pix."], 1), _fmt(row["CLIP-V"]), _fmt(row["FVD-V"], 1), _fmt(row["sync"]), lag,
    ]


def legend(clip_given: bool, fvd_given: bool = False) -> list[str]:
    """One line per column: its meaning and unit, and why a column is empty."""
    lines = []
    for name, meaning in LEGEND.items():
        meaning = meaning.format(min_verified=MIN_VERIFIED_MATCHES)
        if name == "CLIP-V" and not clip_given:
            meaning += f" - empty: {CLIP_V_MISSING}"
        if name == "FVD-V" and not fvd_given:
            meaning += f" - empty: {FVD_V_MISSING}"
        lines.append(f"{name}: {meaning}")
    return lines


def format_table(evaluations: Sequence[SceneEvaluation], overall: dict | None = None, pairs: bool = True) -> str:
    """Aligned text table in the papers' terms: one row per pair (if ``pairs``), one per scene, one for all scenes
    together, then the legend."""
    rows = [["scene / pair", *COLUMNS]]
    for evaluation in evaluations:
        clip = evaluation.report.get("clip")
        rows.append([evaluation.report["scene"], *_cells(evaluation.report["summary"], clip,
                                                         evaluation.report.get("fvd_v"))])
        if pairs:
            for pair in evaluation.report["pairs"]:
                rows.append([f"  {pair['views'][0]}-{pair['views'][1]}", *_cells(pair, None)])
    if overall is not None and len(evaluations) > 1:
        rows.append([f"all {overall['scenes']} scenes", *_cells(overall, overall.get("clip"), overall.get("fvd_v"))])
    clip_given = any("clip" in e.report for e in evaluations)
    fvd_given = (overall is not None and "fvd_v" in overall) or any("fvd_v" in e.report for e in evaluations)
    return text_table(rows) + "\n" + "\n".join(legend(clip_given, fvd_given))


def write_json(path: str | Path, report: dict) -> Path:
    """Writes ``report`` as indented JSON, all or nothing."""
    return write_atomically(path, json.dumps(report, indent=2) + "\n")


def plot_worst_pair(evaluation: SceneEvaluation, path: str | Path) -> Path | None:
    """Side-by-side frames of the scene's worst pair with its matches and, in view b, their epipolar lines.

    Verified matches (those the headline scores) are dots coloured by their Sampson distance (green < 1 px, yellow
    < 3 px, red beyond), with epipolar lines; the other matches are small grey crosses. Returns None when the scene
    has no pair with matches and cameras that define epipolar geometry.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    worst = evaluation.worst
    if worst is None or evaluation.scene is None:
        return None
    scene, (a, b), t = evaluation.scene, worst.views, worst.frame
    image_a, image_b = scene.videos[a][t], scene.videos[b][t]
    height, width = image_a.shape[:2]
    verified = worst.matches.verified
    points_a, points_b = worst.matches.points_a[verified], worst.matches.points_b[verified]
    others_a, others_b = worst.matches.points_a[~verified], worst.matches.points_b[~verified]
    distances = worst.distances[verified] if worst.distances is not None else np.full(len(points_a), np.inf)

    figure, axes = plt.subplots(1, 2, figsize=(10, 5.4))
    names = scene.rig.names
    median = f"{np.median(distances):.2f} px" if len(distances) else "n/a"
    figure.suptitle(
        f"{evaluation.report['scene']}: worst pair {names[a]}-{names[b]}, frame {t}, {len(points_a)} of "
        f"{len(verified)} matches verified, their median epipolar distance {median}",
        fontsize=9,
    )
    # Image extents in the project's pixel convention: pixel (i, j) covers [j, j+1) x [i, i+1).
    for axis, image, title in ((axes[0], image_a, names[a]), (axes[1], image_b, names[b])):
        axis.imshow(image, extent=(0, width, height, 0), interpolation="nearest")
        axis.set_title(title, fontsize=9)
        axis.set_xlim(0, width)
        axis.set_ylim(height, 0)
        axis.set_axis_off()
    colours = [next(c for c, limit in PLOT_COLOURS if d < limit) for d in distances]
    axes[0].scatter(others_a[:, 0], others_a[:, 1], s=8, c="lightgrey", marker="x", linewidths=0.6)
    axes[1].scatter(others_b[:, 0], others_b[:, 1], s=8, c="lightgrey", marker="x", linewidths=0.6)
    axes[0].scatter(points_a[:, 0], points_a[:, 1], s=10, c=colours, edgecolors="black", linewidths=0.3)
    axes[1].scatter(points_b[:, 0], points_b[:, 1], s=10, c=colours, edgecolors="black", linewidths=0.3)
    if worst.fundamental is not None and len(points_a):
        order = np.argsort(-distances)[:PLOT_MAX_LINES]  # the worst matches first
        xs = np.array([0.0, float(width)])
        for n, line in zip(order, epipolar_lines(worst.fundamental, points_a[order]), strict=True):
            if abs(line[1]) > 1e-9:
                axes[1].plot(xs, -(line[0] * xs + line[2]) / line[1], color=colours[n], linewidth=0.6, alpha=0.8)
            else:
                axes[1].axvline(-line[2] / line[0], color=colours[n], linewidth=0.6, alpha=0.8)
    figure.text(0.5, 0.02, "verified matches: green < 1 px, yellow < 3 px, red >= 3 px from their epipolar lines "
                "(drawn in the right view); grey crosses: matches not verified", ha="center", fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return write_atomically(path, buffer.getvalue())
