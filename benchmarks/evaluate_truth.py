"""Does ``syncammaster evaluate`` tell right cameras from wrong ones? Ground truth, a ladder of wrong cameras, and the
shipped model, all in the papers' table.

1. Held-out renders (``syncammaster render --seed 9000``, never used in training), 4 cameras, at the shipped size
   (128x128, 17 frames, the model's own length) and at 256x256 (9 frames), are scored as rendered ("truth") and with
   the cameras they claim made wrong, in this order: every camera turned about its centre by 1, 3 and 10 degrees (a
   seeded random axis per camera, the same axes for every angle), then two cameras trading places ("swap"): the view
   with the most verified matches over its pairs (the camera the evaluation sees best) and the view whose optical
   axis is furthest from it, so the swap is as large as a swap can be for the pairs the evaluation scores (the pair
   between the two other cameras stays right). The videos never change, so coverage, "posed" and Mat. Pix. stay the
   same down the ladder; every headline measure (Epi px, RotErr, TransErr) should grow at every rung, the swap
   included (the checks under the tables say where it does). Scene 3 of this seed films a brick wall (a repetitive
   texture) and is also listed alone.
2. The truth rows again with each pose estimator (``--pose-estimator``): one COLMAP reconstruction of all views (the
   default), COLMAP two-view fits per pair, OpenCV's, with every posed pair's RotErr listed.
3. The shipped model (``syncammaster generate`` with the default model, the scenes' captions and cameras, 50 steps,
   noise seed 0), its ablation without the multi-view module (``--no-sync``) and novel views (``--video`` with the true
   video of cam01) are scored by the same table, beside the 128 px truth of the same scenes (``--model-scenes``).

Run from the repository root (renders and generated scenes are kept in --out, so a second run only scores):

    python benchmarks/evaluate_truth.py --scenes 6 --out runs/evaluate_truth --markdown runs/evaluate_truth/table.md
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from syncammaster.evaluate import EvaluationSettings, evaluate_scene, summarize
from syncammaster.evaluate.controls import farthest_from, perturbed, swapped
from syncammaster.evaluate.poses import ESTIMATORS
from syncammaster.evaluate.report import paper_row, text_table
from syncammaster.render.dataset import SCENES_DIR
from syncammaster.scene import Scene

from harness import (
    SHIPPED_MODEL,
    Stopwatch,
    add_results_argument,
    load_average,
    machine_line,
    markdown_table,
    write_results,
)

SEED = 9000  # held out: the training renders used seeds 1000 and 2000
BRICK_WALL_SCENE = "scene0003"
SIZES = ((128, 17), (256, 9))  # (side in px, frames)
ANGLES_DEG = (1.0, 3.0, 10.0)
HEADLINE_KEYS = ("Epi px", "RotErr", "TransErr")  # the camera-dependent measures that must rise down the ladder
COLUMNS = ("Epi px", "coverage", "RotErr", "TransErr", "posed", "Mat. Pix.", "sync")
# row -> (folder under OUT/model, generate's extra flags; None: novel views given the true cam01 video; COPY: the
# control that gives every camera the true cam01 video, which any view-to-view measure must not reward)
COPY = "copy"
MODEL_ROWS = {"SynCamMaster": ("sync", []), "no sync (ablation)": ("no_sync", ["--no-sync"]),
              "novel views (cam01 given)": ("novel_view", None), "cam01 copied to every camera (control)": (COPY, COPY)}


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "syncammaster.cli", *args], check=True)


def render(out: Path, scenes: int, size: int, frames: int) -> list[Path]:
    folder = out / f"render{size}"
    cli("render", "--scenes", str(scenes), "--cameras", "4", "--frames", str(frames), "--size", str(size),
        "--seed", str(SEED), "--out", str(folder), "--workers", "1", "--quiet")
    return sorted((folder / SCENES_DIR).glob("scene*"))


def generate(truth: Path, out: Path, extra: list[str] | str | None) -> Path:
    """The shipped model's views of ``truth``'s caption and cameras, or the copy control (kept if already there)."""
    if (out / "cameras" / "camera_extrinsics.json").is_file():
        return out
    if extra == COPY:
        scene = Scene.read(truth)
        Scene([scene.videos[0]] * len(scene.videos), scene.rig, scene.intrinsics, scene.prompt, scene.fps).write(out)
        return out
    prompt = (truth / "prompt.txt").read_text(encoding="utf-8").strip()
    flags = extra if extra is not None else ["--video", str(truth / "videos" / "cam01.mp4"), "--video-view", "0"]
    cli("generate", "--prompt", prompt, "--rig", str(truth / "cameras" / "camera_extrinsics.json"), "--out", str(out),
        "--quiet", *flags)
    return out


def cells(numbers: dict) -> list[str]:
    row = paper_row(numbers)

    def fmt(value, digits=2):
        return "-" if value is None else f"{value:.{digits}f}"

    return [fmt(row["Epi px"]), f"{numbers['pairs_scored']}/{numbers['pairs']}", fmt(row["RotErr"]),
            fmt(row["TransErr"], 3), f"{numbers['pairs_posed']}/{numbers['pairs']}", fmt(row["Mat. Pix."], 1),
            fmt(row["sync"])]


def ladder(scenes: list[Scene], names: list[str], settings: EvaluationSettings) -> dict[str, list]:
    """Every rung's evaluation of each scene: truth, each angle, swap (in that order)."""
    rungs: dict[str, list] = {"truth": [], **{f"{a:g} deg": [] for a in ANGLES_DEG}, "swap": []}
    for scene, name in zip(scenes, names, strict=True):
        truth = evaluate_scene(scene, settings, name=name)
        rungs["truth"].append(truth)
        for angle in ANGLES_DEG:
            rungs[f"{angle:g} deg"].append(evaluate_scene(perturbed(scene, angle), settings, name=name))
        seen = best_seen_view(truth)
        rungs["swap"].append(evaluate_scene(swapped(scene, seen, farthest_from(scene, seen)), settings, name=name))
    return rungs


def best_seen_view(evaluation) -> str:
    """The view with the most verified matches over its pairs: the camera the evaluation sees best."""
    pairs = evaluation.report["pairs"]
    return max(evaluation.report["views"], key=lambda v: sum(p["verified"] for p in pairs if v in p["views"]))


def checks(summaries: dict[str, dict]) -> str:
    """For each headline measure: does it grow at every rung of truth, 1, 3, 10 deg, swap; if not, does it grow with
    the angle and where does the swap land (n/a where a measure is empty)."""
    verdicts = []
    for key in HEADLINE_KEYS:
        values = [paper_row(s)[key] for s in summaries.values()]  # truth, the angles, swap
        if any(v is None for v in values):
            verdicts.append(f"{key} n/a")
            continue
        truth, swap = max(values[0], 1e-9), values[-1]
        grows = all(x < y for x, y in zip(values[:-2], values[1:-1], strict=True))
        rung = next((label for label, v in zip(list(summaries)[:-1], values[:-1], strict=True) if swap <= v), None)
        where = "above every angle" if rung is None else f"below the {rung} rung"
        verdicts.append(f"{key}: grows with the angle {'yes' if grows else 'NO'} (3 deg {values[2] / truth:.1f}x "
                        f"truth), swap {swap / truth:.1f}x truth, {where}")
    return "; ".join(verdicts)


def posed_pairs(evaluations: list) -> str:
    """Every posed pair's RotErr, scene:pair=degrees."""
    return ", ".join(f"{e.report['scene'][-2:]}:{p['views'][0][-1]}-{p['views'][1][-1]}={p['rot_err_deg']:.2f}"
                     for e in evaluations for p in e.report["pairs"] if p["pose_estimated"]) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=6, help="held-out scenes per size (default 6)")
    parser.add_argument("--out", default="runs/evaluate_truth", help="folder for renders and generated scenes")
    parser.add_argument("--markdown", default=None, help="also write the tables as markdown to this file")
    parser.add_argument("--model-scenes", type=int, default=None,
                        help="scenes of the model rows, the first of the 128 px ones (default: all; a generation "
                             "takes a minute or more on a busy 2-core CPU)")
    parser.add_argument("--no-model", action="store_true", help="skip the shipped model's rows")
    parser.add_argument("--no-ladder", action="store_true",
                        help="skip the ladder and the pose-estimator rows (only the model rows and their truth)")
    add_results_argument(parser)
    args = parser.parse_args()
    out = Path(args.out)
    machine = machine_line()
    clock = Stopwatch()
    settings = EvaluationSettings()
    header = ["scene set / rung", *COLUMNS]
    sections, verdicts = [], []

    # 1. The ladder at both sizes, all scenes and the brick wall alone; 2. the truth with each pose estimator.
    estimator_header = ["size, pose estimator", "posed", "RotErr", "max RotErr", "TransErr", "pairs (RotErr)"]
    truths, estimator_rows = {}, [estimator_header]
    for size, frames in SIZES:
        if args.no_ladder and size != SIZES[0][0]:
            continue
        folders = render(out, args.scenes, size, frames)
        scenes = [Scene.read(f) for f in folders]
        if args.no_ladder:
            truths[size] = (folders, [evaluate_scene(s, settings, name=f.name)
                                      for s, f in zip(scenes[: args.model_scenes], folders, strict=False)])
            continue
        rungs = ladder(scenes, [f.name for f in folders], settings)
        truths[size] = (folders, rungs["truth"])
        for label, chosen in ((f"{len(folders)} scenes", range(len(folders))),
                              ("brick wall", [i for i, f in enumerate(folders) if f.name == BRICK_WALL_SCENE])):
            summaries = {rung: summarize([evaluations[i] for i in chosen]) for rung, evaluations in rungs.items()}
            rows = [header] + [[f"{size} px, {label}: {rung}", *cells(s)] for rung, s in summaries.items()]
            sections.append(rows)
            verdicts.append(f"{size} px, {label}: {checks(summaries)}")
            print(text_table(rows), "\n" + verdicts[-1], flush=True)
        for estimator in ESTIMATORS:
            evaluations = rungs["truth"] if estimator == settings.pose_estimator else [
                evaluate_scene(s, EvaluationSettings(pose_estimator=estimator), name=f.name)
                for s, f in zip(scenes, folders, strict=True)]
            summary = summarize(evaluations)
            errors = [p["rot_err_deg"] for e in evaluations for p in e.report["pairs"] if p["pose_estimated"]]
            estimator_rows.append([f"{size} px, {estimator}", f"{summary['pairs_posed']}/{summary['pairs']}",
                                   "-" if not errors else f"{summary['rot_err_deg']:.2f}",
                                   "-" if not errors else f"{max(errors):.2f}",
                                   "-" if not errors else f"{summary['trans_err']:.3f}", posed_pairs(evaluations)])
            print(text_table([estimator_header, estimator_rows[-1]]), flush=True)
    if not args.no_ladder:
        sections.append(estimator_rows)
    blocks = {} if args.no_ladder else {
        "ladder": ("\n\n".join(markdown_table(rows) for rows in sections[:-1])
                   + "\n\n" + "\n".join(f"- {v}" for v in verdicts), "none (ground truth)"),
        "estimators": (markdown_table(estimator_rows), "none (ground truth)")}

    # 3. The shipped model, its ablation and novel views against the 128 px truth.
    if not args.no_model:
        folders, truth = (chosen[: args.model_scenes] for chosen in truths[SIZES[0][0]])
        rows = [header, ["ground truth", *cells(summarize(truth))]]
        for row, (name, extra) in MODEL_ROWS.items():
            made = [generate(f, out / "model" / name / f.name, extra) for f in folders]
            evaluations = [evaluate_scene(Scene.read(m), settings, name=m.name) for m in made]
            rows.append([row, *cells(summarize(evaluations))])
            print(text_table(rows[-2:]), flush=True)
        sections.append(rows)
        blocks["model"] = (markdown_table(rows) + f"\n\n{len(folders)} scenes of the 128 px truth.", SHIPPED_MODEL)

    clock.stop()
    report = "\n\n".join(markdown_table(rows) for rows in sections) + "\n\n" + "\n".join(f"- {v}" for v in verdicts)
    report += f"\n- machine at the start: {machine}; {clock.wall:.0f} s; load average at the end {load_average()}\n"
    print(report)
    if args.markdown:
        Path(args.markdown).write_text(report, encoding="utf-8")
    if args.results:
        for name, (body, model) in blocks.items():
            write_results(f"evaluate_truth.py {name}", f"{body}\n\n{clock.wall:.0f} s in all; load average at the "
                          f"end {load_average()}.", machine, model)


if __name__ == "__main__":
    main()
