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


COLUMNS = ("matches/f", "verified/f", "matched px/f", "epi med px", "<1px", "<3px", "all med px", "sync corr", "lag0")


def _row(label: str, numbers: dict, sync_lag: str) -> list[str]:
    epipolar = numbers["epipolar"]
    headline = [_fmt(epipolar["median_px"]), _fmt(epipolar["under_1px"], percent=True),
                _fmt(epipolar["under_3px"], percent=True)] if epipolar else ["n/a", "-", "-"]
    return [
        label,
        _fmt(numbers["matches_per_frame"], 1),
        _fmt(numbers["verified_per_frame"], 1),
        _fmt(numbers["matched_pixels_per_frame"], 1),
        *headline,
        _fmt((numbers["epipolar_all"] or {}).get("median_px")),
        _fmt(numbers.get("sync_corr") if "sync_corr" in numbers else numbers["sync"]["corr"]),
        sync_lag,
    ]


def _pair_row(pair: dict) -> list[str]:
    lag = pair["sync"]["best_lag"]
    return _row(f"  {pair['views'][0]}-{pair['views'][1]}", pair, "-" if lag is None else f"{lag:+d}")


def format_table(evaluations: Sequence[SceneEvaluation], overall: dict | None = None, pairs: bool = True) -> str:
    """Aligned text table: one row per pair (if ``pairs``), one per scene, one for all scenes together."""
    rows = [["scene / pair", *COLUMNS]]
    for evaluation in evaluations:
        summary = evaluation.report["summary"]
        share = summary["sync_lag0_share"]
        rows.append(_row(evaluation.report["scene"], summary, _fmt(share, percent=True)))
        if pairs:
            rows.extend(_pair_row(pair) for pair in evaluation.report["pairs"])
    if overall is not None and len(evaluations) > 1:
        rows.append(_row(f"all {overall['scenes']} scenes", overall, _fmt(overall["sync_lag0_share"], percent=True)))
    notes = (
        "matches/f: matches per sampled frame (SIFT, or the --matcher model); verified/f: those a fundamental matrix "
        f"fitted to them explains (a consensus of >= {MIN_VERIFIED_MATCHES}); matched px/f: distinct pixels of "
        "RANSAC-inlier matches; epi: Sampson distance of the verified matches to the epipolar geometry of the scene's "
        "cameras (n/a: none verified); all med px: the same over every match; sync corr: correlation of the views' "
        "motion curves; lag0: share of pairs (scene rows) or best lag (pair rows)."
    )
    return text_table(rows) + "\n" + notes


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
