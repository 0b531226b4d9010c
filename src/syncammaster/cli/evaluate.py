"""``syncammaster evaluate``: score scene folders against their cameras (epipolar error, RotErr / TransErr, matched
pixels, synchronization; CLIP scores with --clip)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .argtypes import non_negative_int, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenes", nargs="+", metavar="SCENE", help="scene folders (generated, rendered or real)")
    parser.add_argument("--json", default=None, metavar="FILE", help="write every number to this JSON file")
    parser.add_argument("--plots", default=None, metavar="DIR",
                        help="folder for each scene's worst-pair PNG (default: the --json folder, else ./evaluation)")
    parser.add_argument("--no-plots", action="store_true", help="write no PNG")
    parser.add_argument("--frames", type=positive_int, default=8, help="time steps sampled for matching (default 8)")
    parser.add_argument("--ratio", type=float, default=0.8, help="Lowe ratio-test threshold (default 0.8)")
    parser.add_argument("--ransac-px", type=float, default=1.0,
                        help="inlier threshold of the RANSAC and MAGSAC++ fits to the matches, pixels (default 1)")
    parser.add_argument("--max-lag", type=non_negative_int, default=4, help="largest lag of the sync score (default 4)")
    parser.add_argument("--intrinsics", default=None, metavar="FILE.json",
                        help="intrinsics for every scene (default: each scene's, else the training formula)")
    parser.add_argument("--focal-per-side", type=float, default=None,
                        help="scenes without intrinsics: fx = fy = F * max(W, H) (default 24 / 23.76)")
    parser.add_argument("--matcher", default=None, metavar="DIR",
                        help="local keypoint-matcher folder (LightGlue, SuperGlue, EfficientLoFTR) instead of SIFT")
    parser.add_argument("--match-threshold", type=float, default=0.0,
                        help="with --matcher: keep matches scoring above this (default 0: the model's own filter)")
    parser.add_argument("--clip", default=None, metavar="DIR", help="local CLIP folder: adds CLIP-T, CLIP-F, CLIP-V")
    parser.add_argument("--fvd", default=None, metavar="FILE",
                        help="local TorchScript video network (FVD's i3d_torchscript.pt, or a folder holding one .pt): "
                        "adds FVD-V against --fvd-reference")
    parser.add_argument("--fvd-reference", nargs="+", default=None, metavar="SCENE",
                        help="with --fvd: reference scene folders (e.g. the ground truth of the same prompts and "
                        "cameras)")
    parser.add_argument("--pose-estimator", choices=("colmap", "colmap-pairs", "opencv"), default="colmap",
                        help="poses behind RotErr / TransErr: one COLMAP reconstruction of all views (default), or a "
                        "two-view fit per pair with COLMAP (colmap-pairs) or OpenCV")
    parser.add_argument("--device", default=None, help="torch device for CLIP, --matcher and --fvd (default cpu)")
    parser.add_argument("--no-pairs", action="store_true", help="table rows per scene only")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing JSON / PNG of the same name")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _plot_names(scenes: list[Path]) -> list[str]:
    """One PNG name per scene: its folder name, numbered when two scenes share a name."""
    names = [f"{scene.resolve().name or 'scene'}_worst_pair.png" for scene in scenes]
    return [f"{i:03d}_{n}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def run(args: argparse.Namespace) -> None:
    from ..app import CommandError
    from ..cameras import Intrinsics
    from ..evaluate import EvaluationSettings, evaluate_scene_dir, summarize
    from ..evaluate.report import LEGEND, format_table, legend, paper_row, plot_worst_pair, write_json

    # 1. Check inputs and outputs before any work.
    if args.intrinsics is not None and args.focal_per_side is not None:
        raise CommandError("give either --intrinsics or --focal-per-side, not both")
    settings = EvaluationSettings(args.frames, args.ratio, args.ransac_px, args.max_lag, args.pose_estimator)
    intrinsics = Intrinsics.from_json(args.intrinsics) if args.intrinsics is not None else None
    scenes = [Path(s) for s in args.scenes]
    plots_dir = None
    if not args.no_plots:
        plots_dir = Path(args.plots) if args.plots else (Path(args.json).parent if args.json else Path("evaluation"))
    targets = [Path(args.json)] if args.json else []
    if plots_dir is not None:
        targets += [plots_dir / name for name in _plot_names(scenes)]
    clash = next((t for t in targets if t.exists()), None)
    if clash is not None and not args.overwrite:
        raise CommandError(f"{clash} already exists; choose another --json / --plots location or pass --overwrite")
    matcher = None
    if args.matcher is not None:
        from ..evaluate.matching import LearnedMatcher

        matcher = LearnedMatcher(args.matcher, device=args.device or "cpu", threshold=args.match_threshold,
                                 ransac_px=args.ransac_px)
    clip = None
    if args.clip is not None:
        from ..evaluate.clip import ClipScorer

        clip = ClipScorer(args.clip, device=args.device or "cpu")
    if (args.fvd is None) != (args.fvd_reference is None):
        raise CommandError("--fvd and --fvd-reference go together: FVD-V compares the scenes with reference scenes "
                           "through a local video network")
    fvd, references = None, []
    if args.fvd is not None:
        from ..evaluate.fvd import FvdScorer
        from ..scene import Scene

        fvd = FvdScorer(args.fvd, device=args.device or "cpu")
        references = [Scene.read(path) for path in args.fvd_reference]

    # 2. Score every scene; any scene that cannot be scored stops the command before anything is written.
    evaluations = []
    for scene in scenes:
        evaluation = evaluate_scene_dir(scene, settings, intrinsics=intrinsics, focal_per_side=args.focal_per_side,
                                        progress=not args.quiet, matcher=matcher)
        if clip is not None:
            report = evaluation.report
            report["clip"] = clip.scores(evaluation.scene.videos, report["prompt"], report["sampled_frames"])
        evaluations.append(evaluation)
    overall = summarize(evaluations)
    if clip is not None:
        overall["clip"] = {"clip_v": sum(e.report["clip"]["clip_v"] or 0.0 for e in evaluations) / len(evaluations)}
    if fvd is not None:
        from ..evaluate import sample_frames

        overall["fvd_v"] = fvd.distance(
            [(e.scene.videos, e.report["sampled_frames"]) for e in evaluations],
            [(r.videos, sample_frames(len(r.videos[0]), settings.frames)) for r in references])
        if len(evaluations) == 1:
            evaluations[0].report["fvd_v"] = overall["fvd_v"]

    # 3. Report: table, JSON, worst-pair plots.
    print(format_table(evaluations, overall, pairs=not args.no_pairs))
    for evaluation in evaluations:
        if "clip" in evaluation.report:
            scores = evaluation.report["clip"]
            print(f"{evaluation.report['scene']}: " + ", ".join(
                f"{k.upper().replace('_', '-')} {'-' if v is None else f'{v:.2f}'}" for k, v in scores.items()))
    if plots_dir is not None:
        for evaluation, name in zip(evaluations, _plot_names(scenes), strict=True):
            written = plot_worst_pair(evaluation, plots_dir / name)
            print(f"wrote {written}" if written else f"{evaluation.report['scene']}: no pair with matches to plot")
    if args.json:
        settings_record = {"frames": args.frames, "ratio": args.ratio, "ransac_px": args.ransac_px,
                           "max_lag": args.max_lag, "matcher": args.matcher or "sift",
                           "match_threshold": args.match_threshold, "pose_estimator": args.pose_estimator}
        if fvd is not None:
            settings_record["fvd"] = str(args.fvd)
            settings_record["fvd_reference"] = [str(path) for path in args.fvd_reference]
        for evaluation in evaluations:
            evaluation.report["table"] = paper_row(evaluation.report["summary"], evaluation.report.get("clip"),
                                                   evaluation.report.get("fvd_v"))
        overall["table"] = paper_row(overall, overall.get("clip"), overall.get("fvd_v"))
        columns = dict(zip(LEGEND, legend(clip is not None, fvd is not None), strict=True))
        write_json(args.json, {"settings": settings_record, "columns": columns, "summary": overall,
                               "scenes": [e.report for e in evaluations]})
        print(f"wrote {args.json}")
