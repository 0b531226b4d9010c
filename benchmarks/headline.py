"""Consistency headline benchmark: does ``syncammaster evaluate``'s median epipolar error tell true cameras from
swapped ones on ground-truth renders?

For every scene folder it scores the true videos and a control in which the two views sharing the most verified
matches trade cameras (each video then claims the other's extrinsics), with two figures:

- all matches: the median Sampson distance over every ratio-tested SIFT match (the earlier headline, kept as
  ``epipolar_all``);
- verified: the same over the matches a fundamental matrix fitted to them explains (the headline, ``epipolar``).

A good headline is small on the truth and several times larger on the control. Run from the repository root on
rendered scenes, e.g.:

    syncammaster render --scenes 8 --cameras 4 --seed 9000 --out /tmp/r
    python benchmarks/headline.py /tmp/r/train/procedural/* --markdown /tmp/r/headline.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from syncammaster.cameras import CameraRig
from syncammaster.evaluate import EvaluationSettings, evaluate_scene, summarize
from syncammaster.evaluate.report import text_table
from syncammaster.scene import Scene

from harness import add_results_argument, machine_line, markdown_table, write_results


def swapped_cameras(scene: Scene, views: list[str]) -> Scene:
    """``scene`` with the extrinsics of the two named views exchanged."""
    i, j = (scene.rig.names.index(name) for name in views)
    order = list(range(scene.rig.num_views))
    order[i], order[j] = j, i
    rig = CameraRig(scene.rig.c2w[order], scene.rig.names, intrinsics=scene.rig.intrinsics)
    return Scene(scene.videos, rig, scene.intrinsics, scene.prompt, scene.fps)


def _median(summary: dict, key: str) -> float | None:
    return summary[key]["median_px"] if summary[key] else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _ratio(wrong: float | None, right: float | None) -> str:
    return "-" if wrong is None or not right else f"{wrong / right:.1f}x"


def _row(name: str, swapped: str, right: dict, wrong: dict) -> list[str]:
    verified, everything = right["epipolar"] or {}, right["epipolar_all"] or {}
    return [name, swapped, f"{verified.get('num_matches', 0)} / {everything.get('num_matches', 0)}",
            _fmt(_median(right, "epipolar_all")), _fmt(_median(wrong, "epipolar_all")),
            _ratio(_median(wrong, "epipolar_all"), _median(right, "epipolar_all")),
            _fmt(_median(right, "epipolar")), _fmt(_median(wrong, "epipolar")),
            _ratio(_median(wrong, "epipolar"), _median(right, "epipolar"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenes", nargs="+", help="scene folders (ground truth: rendered or real)")
    parser.add_argument("--frames", type=int, default=8, help="time steps matched per pair (default 8)")
    parser.add_argument("--markdown", default=None, help="also write the table as markdown to this file")
    add_results_argument(parser)
    args = parser.parse_args()

    settings = EvaluationSettings(frames=args.frames)
    header = ["scene", "swapped", "verified / all matches", "all: true px", "all: swapped px", "all: ratio",
              "verified: true px", "verified: swapped px", "verified: ratio"]
    rows, truths, controls = [header], [], []
    for folder in args.scenes:
        scene, name = Scene.read(folder), Path(folder).name
        truth = evaluate_scene(scene, settings, name=name)
        best = max(truth.report["pairs"], key=lambda p: (p["epipolar"] or {}).get("num_matches", 0))
        control = evaluate_scene(swapped_cameras(scene, best["views"]), settings, name=name)
        truths.append(truth)
        controls.append(control)
        rows.append(_row(name, "-".join(best["views"]), truth.report["summary"], control.report["summary"]))
    rows.append(_row(f"all {len(truths)} scenes", "", summarize(truths), summarize(controls)))
    print(text_table(rows))
    machine = machine_line()
    if args.markdown:
        Path(args.markdown).write_text(markdown_table(rows) + f"\n\n- machine: {machine}\n")
    if args.results:
        write_results("headline.py", markdown_table(rows), machine, "none (ground truth)")


if __name__ == "__main__":
    main()
