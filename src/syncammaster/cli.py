"""The ``syncammaster`` command: generate, cameras, convert, render, sample-list, cache, evaluate, train, export, ui,
download.

Every failure ends in one line on stderr (``syncammaster <command>: error: ...``) and a non-zero exit code; a failed
command leaves its output folder as it found it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from . import app
from .app import default_model_dir  # noqa: F401 (the shipped model's folder; scripts import it from here)
from .argtypes import (
    frame_count,
    lora_file_and_scale,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    size,
)
from .atomic import save_atomically
from .caching import CACHE_METHODS
from .hub import CHECKPOINT_FILE, CHECKPOINT_REPO, WAN_REPO

EXIT_USAGE = 2
EXIT_FAILURE = 1


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad argument prints a single line instead of the usage block."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def cmd_generate(args) -> None:
    from .cameras import CameraRig

    if args.prompts is not None:  # many scenes: see syncammaster.batch
        from .batch import run_batch

        return run_batch(args)
    if args.ranks_per_scene != 1:
        raise app.CommandError("--ranks-per-scene needs --prompts FILE; one --prompt is shared by all the processes")

    # 1. Check inputs and the output folder before any work.
    rig = CameraRig.load(args.rig, num_views=args.views)
    out = Path(args.out)
    app.check_out_dir_free(out, rig)
    clip, reference_view, defaults = None, 0, None
    if args.video is not None:
        # The given video is read now, before the model loads, against the model's defaults (its config file).
        from .model_files import video_defaults

        reference_view = app.reference_view_index(rig, args.video_view)
        defaults = video_defaults(None if args.wan is not None else args.model or app.default_model_dir())
        clip = app.read_reference_video(args.video, args.frames or int(defaults["num_frames"]),
                                     args.video_fps or defaults["fps"], args.video_start)
    elif args.video_view != "0" or args.reference_mode is not None or args.video_fps or args.video_start:
        raise app.CommandError("--video-view, --video-fps, --video-start and --reference-mode need --video FILE "
                           "(the given view)")

    cache_threshold = app.check_step_cache(args)
    if args.cache is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise app.CommandError("--cache does not combine with several processes (each would skip different steps); "
                           "drop --cache or run one process")
    if args.compile:
        from .compilation import check_compile

        check_compile(args.device)

    # 2. Generate (under torchrun, the processes share the work of the sample: see syncammaster.parallel).
    group = app.join_processes(args)
    if clip is not None and not args.quiet:
        height, width = args.height or defaults["height"], args.width or defaults["width"]
        same_size = clip.frames.shape[1:3] == (height, width)
        resized = "" if same_size else f"; resized and centre-cropped to {width}x{height}"
        print(f"--video: {clip.describe()}{resized}; it is camera {rig.names[reference_view]}")
    pipe = app.load_pipeline(args)
    app.add_loras_and_step_cache(pipe, args, cache_threshold)
    if args.compile:
        from .compilation import compile_transformer

        compile_transformer(pipe)
    pipe.set_progress_bar_config(desc="denoising", disable=args.quiet)
    reference_kwargs = {}
    if clip is not None:
        # The released checkpoint was trained text-only: it takes a given view only re-noised (training-free).
        mode = args.reference_mode or ("renoise" if args.wan is not None else "clean")
        reference_kwargs = {"reference_video": clip.frames, "reference_view": reference_view, "reference_mode": mode}
    result = pipe(
        prompt=args.prompt,
        rig=rig,
        negative_prompt=args.negative_prompt,
        height=args.height,
        width=args.width,
        num_frames=args.frames if clip is None else clip.frames.shape[0],
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        seed=args.seed,
        sync=not args.no_sync,
        output_type="np",
        process_group=group,
        **reference_kwargs,
    )
    if group is not None and group.rank() > 0:
        return  # rank 0 writes the scene
    # The written videos play at the rate their frames represent: the given video's sampling rate, else the model's.
    fps = args.fps or (clip.fps if clip is not None else pipe.config.default_fps)
    scene = app.generated_scene(pipe, result.videos[0], rig, args.prompt, fps)
    num_frames, height, width = scene.videos[0].shape[:3]  # the model's own size where the command named none

    # 3. Write the scene folder (the given video is its camera's video, as resized).
    app.write_generated_scene(scene, out, rig_name=args.rig)
    if not args.quiet:
        print(f"wrote {rig.num_views} videos of {num_frames} frames at {width}x{height} to {out}/")


# ---------------------------------------------------------------------- cameras


def cmd_cameras(args) -> None:
    from .cameras import CameraRig, list_presets

    if args.rig is None:
        if args.plot or args.export or args.views:
            raise app.CommandError("--plot, --export and --views need --rig PRESET_OR_JSON")
        width = max(len(name) for name in list_presets())
        for name, description in list_presets().items():
            print(f"{name:<{width}}  {description}")
        return
    rig = CameraRig.load(args.rig, num_views=args.views)
    print(rig)
    for target in (args.plot, args.export):
        if target is not None and Path(target).exists():
            raise app.CommandError(f"{target} already exists; choose another file name")
    if args.plot:
        rig.plot(args.plot, title=f"{rig.num_views} cameras: {args.rig}")
        print(f"wrote {args.plot}")
    if args.export:
        rig.to_syncamvideo_json(args.export, num_frames=args.frames)
        print(f"wrote {args.export}")


# ---------------------------------------------------------------------- convert


def cmd_convert(args) -> None:
    import torch

    from .hub import resolve_file
    from .model_files import check_checkpoint_file
    from .models import SynCamMasterTransformer3DModel

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise app.CommandError(f"{out} is a file; choose a new --out folder")
    if out.exists() and any(out.iterdir()):
        raise app.CommandError(f"{out} exists and is not empty; choose a new --out folder")
    checkpoint = check_checkpoint_file(resolve_file(args.checkpoint, args.revision))
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    if args.wan is not None:
        from .pipeline import SynCamMasterPipeline

        model = SynCamMasterPipeline.from_wan(args.wan, checkpoint, torch_dtype=dtype, revision=args.revision)
    else:
        model = SynCamMasterTransformer3DModel.from_official_checkpoint(
            checkpoint, torch_dtype=dtype, **({"num_attention_heads": args.heads} if args.heads else {})
        )
    save_atomically(model.save_pretrained, out)
    print(f"wrote {'a SynCamMaster pipeline' if args.wan else 'a SynCamMaster transformer'} folder to {out}/")


# ---------------------------------------------------------------------- evaluate


def _plot_names(scenes: list[Path]) -> list[str]:
    """One PNG name per scene: its folder name, numbered when two scenes share a name."""
    names = [f"{scene.resolve().name or 'scene'}_worst_pair.png" for scene in scenes]
    return [f"{i:03d}_{n}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def cmd_evaluate(args) -> None:
    from .cameras import Intrinsics
    from .evaluate import EvaluationSettings, evaluate_scene_dir, summarize
    from .evaluate.report import LEGEND, format_table, legend, paper_row, plot_worst_pair, write_json

    # 1. Check inputs and outputs before any work.
    if args.intrinsics is not None and args.focal_per_side is not None:
        raise app.CommandError("give either --intrinsics or --focal-per-side, not both")
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
        raise app.CommandError(f"{clash} already exists; choose another --json / --plots location or pass --overwrite")
    matcher = None
    if args.matcher is not None:
        from .evaluate.matching import LearnedMatcher

        matcher = LearnedMatcher(args.matcher, device=args.device or "cpu", threshold=args.match_threshold,
                                 ransac_px=args.ransac_px)
    clip = None
    if args.clip is not None:
        from .evaluate.clip import ClipScorer

        clip = ClipScorer(args.clip, device=args.device or "cpu")
    if (args.fvd is None) != (args.fvd_reference is None):
        raise app.CommandError("--fvd and --fvd-reference go together: FVD-V compares the scenes with reference scenes "
                               "through a local video network")
    fvd, references = None, []
    if args.fvd is not None:
        from .evaluate.fvd import FvdScorer
        from .scene import Scene

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
        from .evaluate import sample_frames

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


# ---------------------------------------------------------------------- train


def cmd_train(args) -> None:
    from .ranks import global_rank
    from .training import load_config, train

    overrides = {"max_steps": args.max_steps} if args.max_steps is not None else {}
    config = load_config(args.config, overrides)
    folder = train(config, restart=args.restart, progress_bar=not args.quiet)
    if global_rank() == 0:  # every process of a multi-process run returns here; one reports
        print(f"stage {config.stage}: exported to {folder}/")


# ---------------------------------------------------------------------- parser

HUB_FILE_NAMES = f"a Hugging Face repo id ({CHECKPOINT_REPO} means its {CHECKPOINT_FILE}; or OWNER/REPO/FILE)"
REVISION_HELP = "branch, tag or commit of every Hugging Face repo id given (default: main)"


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --wan, --checkpoint and --revision: the model a command runs, as local paths or Hub repo ids."""
    parser.add_argument("--model", default=None, help="SynCamMaster diffusers folder or Hugging Face repo id "
                        "(default: the shipped small model)")
    parser.add_argument("--wan", default=None, help=f"Wan2.1-T2V diffusers folder or repo id ({WAN_REPO}, or the "
                        "14B), used with --checkpoint")
    parser.add_argument("--checkpoint", default=None, help=f"released SynCamMaster checkpoint: a file, or "
                        f"{HUB_FILE_NAMES}")
    parser.add_argument("--revision", default=None, help=REVISION_HELP)


COMMANDS_ELSEWHERE = {  # name: (help, module, function adding its flags, function running it)
    "render": ("render procedural multi-camera scenes (SynCamVideo layout)", ".render.dataset",
               "add_render_arguments", "run_render"),
    "sample-list": ("list the view groups of each scene of a dataset (JSON)", ".data.views",
                    "add_sample_list_arguments", "run_sample_list"),
    "cache": ("encode a dataset's videos (VAE) and captions (text encoder) once", ".data.cache",
              "add_cache_arguments", "run_cache"),
    "export": ("export a scene folder for reconstruction (nerfstudio: a static scene; dnerf: with times)", ".export",
               "add_export_arguments", "run_export"),
    "ui": ("a web app (Gradio): place the cameras, generate, watch the views", ".ui", "add_ui_arguments", "run_ui"),
    "download": ("fetch the Wan2.1 base model, the released checkpoint or the SynCamVideo dataset from the Hub",
                 ".download", "add_download_arguments", "run_download"),
}


def _invoked_command(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is not an option), if any."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``syncammaster`` parser; ``argv`` (default ``sys.argv[1:]``) says which command's flags to load."""
    invoked = _invoked_command(sys.argv[1:] if argv is None else argv)
    parser = OneLineArgumentParser(
        prog="syncammaster",
        description="SynCamMaster: a text prompt and N cameras -> N synchronized, 3D-consistent videos.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineArgumentParser)
    commands.required = True

    gen = commands.add_parser("generate", help="generate one video per camera of a rig (writes a scene folder)")
    what = gen.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt", help="the caption of the scene")
    what.add_argument("--prompts", metavar="FILE",
                      help="many scenes, one a line, into the data set --out DIR (DIR/train/generated/sceneNNNN/ and "
                      "DIR/metadata.csv; a second run skips finished scenes): JSON Lines with the keys prompt, rig, "
                      "views, seed, video, video_view, negative_prompt (all but prompt optional; the flags give what "
                      "a line leaves out; relative paths start from FILE's folder), or plain text, one prompt a line. "
                      "Scene k without a seed of its own is seeded from --seed and k")
    gen.add_argument("--rig", default="arc", help="a preset (see 'syncammaster cameras') or a camera_extrinsics.json")
    gen.add_argument("--views", type=positive_int, default=None, help="use the first N cameras of the rig")
    gen.add_argument("--frames", type=frame_count, help="video frames, 4k+1 (default: the model's; 17 for the shipped "
                     "model, 81 for the released weights)")
    gen.add_argument("--height", type=size, help="pixels, a multiple of 16 (default: the model's; 128 shipped, 480 "
                     "released)")
    gen.add_argument("--width", type=size, help="pixels, a multiple of 16 (default: the model's; 128 shipped, 832 "
                     "released)")
    gen.add_argument("--steps", type=positive_int, default=50, help="denoising steps (default 50)")
    gen.add_argument("--guidance-scale", type=float, default=None,
                     help="classifier-free guidance (default: the model's; 5.0 for the shipped and released weights)")
    gen.add_argument("--negative-prompt", default=None,
                     help="negative caption (default: the model's; Wan's for the released weights)")
    gen.add_argument("--seed", type=non_negative_int, default=0, help="noise seed (default 0)")
    gen.add_argument("--out", required=True, help="output scene folder (with --prompts: the data set folder)")
    add_model_arguments(gen)
    gen.add_argument("--video", default=None, metavar="FILE",
                     help="novel views: this video is one camera's view and the others are generated around it "
                     "(upright as players show it; --frames frames from --video-start, sampled at --video-fps, "
                     "resized and centre-cropped to the output size)")
    gen.add_argument("--video-fps", type=positive_float, default=None, metavar="F",
                     help="with --video: sample it at F frames per second (default: the model's training rate, 15; "
                     "a 60 fps clip gives every 4th frame)")
    gen.add_argument("--video-start", type=non_negative_float, default=0.0, metavar="SECONDS",
                     help="with --video: the second of the clip to start at (default 0)")
    gen.add_argument("--video-view", default="0", metavar="K",
                     help="with --video: the camera that filmed it, an index into the rig (default 0) or a name")
    gen.add_argument("--reference-mode", choices=["clean", "renoise"], default=None,
                     help="with --video: 'clean' for models fine-tuned for novel views (the shipped one, default), "
                     "'renoise' for text-only models (default with --wan: the released checkpoint)")
    gen.add_argument("--no-sync", action="store_true", help="bypass the multi-view synchronization (ablation)")
    gen.add_argument("--fps", type=positive_float, default=None,
                     help="frame rate of the written videos (default: the rate their frames represent: --video's "
                     "sampling rate, else the model's training rate, 15)")
    gen.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    gen.add_argument(
        "--dtype",
        choices=["auto", "fp32", "bf16", "fp16"],
        default="auto",
        help="model precision (default: bf16 on GPU, fp32 on CPU)",
    )
    gen.add_argument("--cpu-offload", action="store_true", help="keep only the running model on the GPU")
    gen.add_argument("--vae-tiling", action="store_true", help="decode in tiles (less memory for large videos)")
    gen.add_argument("--vae-slicing", action="store_true", help="decode one view at a time (less memory, slower)")
    gen.add_argument("--cache", choices=list(CACHE_METHODS), default=None, metavar="NAME",
                     help="skip work between neighbouring steps with one of diffusers' caches: "
                     + "; ".join(f"{name}: {method.summary}" for name, method in CACHE_METHODS.items())
                     + " (default: none; recommended: taylorseer-lite; speed and fidelity on the shipped model: "
                     "benchmarks/RESULTS.md, 'Caches')")
    gen.add_argument("--cache-threshold", type=float, default=None, metavar="X",
                     help="the cache's knob: "
                     + "; ".join(f"{name}: {method.knob} (default {method.default:g})"
                                 for name, method in CACHE_METHODS.items()))
    gen.add_argument("--lora", type=lora_file_and_scale, action="append", default=[], metavar="FILE[:SCALE]",
                     help="a LoRA for the transformer (diffusers/peft keys, or the original Wan/kohya names; may "
                     "include the multi-view layers), at SCALE (default 1); repeat for several")
    gen.add_argument("--compile", action="store_true",
                     help="compile the transformer's repeated blocks (torch.compile, regional): the first scene "
                     "pays for compiling, the later ones run the compiled blocks; meant for --prompts runs on a GPU "
                     "(on the 2-core CPU it did not pay: see RESULTS.md, 'Compiled generation')")
    gen.add_argument("--ranks-per-scene", type=positive_int, default=1, metavar="K",
                     help="with --prompts under torchrun: processes sharing each scene (its guidance branches, then "
                     "its views); the processes form groups of K and each group makes its share of the scenes "
                     "(default 1: every process makes whole scenes)")
    gen.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    gen.set_defaults(func=cmd_generate)

    cams = commands.add_parser("cameras", help="list the rig presets, or show / plot / export one rig")
    cams.add_argument("--rig", default=None, help="a preset or a camera_extrinsics.json")
    cams.add_argument("--views", type=positive_int, default=None, help="use the first N cameras")
    cams.add_argument("--plot", default=None, metavar="FILE.png", help="draw the cameras to a PNG")
    cams.add_argument("--export", default=None, metavar="FILE.json", help="write a SynCamVideo camera_extrinsics.json")
    cams.add_argument("--frames", type=positive_int, default=1, help="frames written by --export (default 1)")
    cams.set_defaults(func=cmd_cameras)

    conv = commands.add_parser("convert", help="released checkpoint -> diffusers folder")
    conv.add_argument("checkpoint", help=f"released SynCamMaster checkpoint: a file, or {HUB_FILE_NAMES}")
    conv.add_argument("--out", required=True, help="output folder (new or empty)")
    conv.add_argument("--wan", default=None, help="also pack a Wan2.1-T2V diffusers folder's components (a folder "
                      f"or a repo id such as {WAN_REPO}): a pipeline")
    conv.add_argument("--revision", default=None, help=REVISION_HELP)
    conv.add_argument("--heads", type=positive_int, default=None, help="attention heads (default: width / 128)")
    conv.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="bf16", help="stored precision")
    conv.set_defaults(func=cmd_convert)
    # Commands whose flags live next to their code: that module is imported only when the command is the one run.
    for name, (summary, module_name, add_arguments, run) in COMMANDS_ELSEWHERE.items():
        command = commands.add_parser(name, help=summary)
        if name == invoked:
            module = importlib.import_module(module_name, __package__)
            getattr(module, add_arguments)(command)
            command.set_defaults(func=getattr(module, run))

    ev = commands.add_parser(
        "evaluate", help="score scene folders against their cameras: epipolar error, RotErr/TransErr, Mat. Pix., sync")
    ev.add_argument("scenes", nargs="+", metavar="SCENE", help="scene folders (generated, rendered or real)")
    ev.add_argument("--json", default=None, metavar="FILE", help="write every number to this JSON file")
    ev.add_argument("--plots", default=None, metavar="DIR",
                    help="folder for each scene's worst-pair PNG (default: the --json folder, else ./evaluation)")
    ev.add_argument("--no-plots", action="store_true", help="write no PNG")
    ev.add_argument("--frames", type=positive_int, default=8, help="time steps sampled for matching (default 8)")
    ev.add_argument("--ratio", type=float, default=0.8, help="Lowe ratio-test threshold (default 0.8)")
    ev.add_argument("--ransac-px", type=float, default=1.0,
                    help="inlier threshold of the RANSAC and MAGSAC++ fits to the matches, pixels (default 1)")
    ev.add_argument("--max-lag", type=non_negative_int, default=4, help="largest lag of the sync score (default 4)")
    ev.add_argument("--intrinsics", default=None, metavar="FILE.json",
                    help="intrinsics for every scene (default: each scene's, else the training formula)")
    ev.add_argument("--focal-per-side", type=float, default=None,
                    help="scenes without intrinsics: fx = fy = F * max(W, H) (default 24 / 23.76)")
    ev.add_argument("--matcher", default=None, metavar="DIR",
                    help="local keypoint-matcher folder (LightGlue, SuperGlue, EfficientLoFTR) instead of SIFT")
    ev.add_argument("--match-threshold", type=float, default=0.0,
                    help="with --matcher: keep matches scoring above this (default 0: the model's own filter)")
    ev.add_argument("--clip", default=None, metavar="DIR", help="local CLIP folder: adds CLIP-T, CLIP-F, CLIP-V")
    ev.add_argument("--fvd", default=None, metavar="FILE",
                    help="local TorchScript video network (FVD's i3d_torchscript.pt, or a folder holding one .pt): "
                         "adds FVD-V against --fvd-reference")
    ev.add_argument("--fvd-reference", nargs="+", default=None, metavar="SCENE",
                    help="with --fvd: reference scene folders (e.g. the ground truth of the same prompts and cameras)")
    ev.add_argument("--pose-estimator", choices=("colmap", "colmap-pairs", "opencv"), default="colmap",
                    help="poses behind RotErr / TransErr: one COLMAP reconstruction of all views (default), or a "
                         "two-view fit per pair with COLMAP (colmap-pairs) or OpenCV")
    ev.add_argument("--device", default=None, help="torch device for CLIP, --matcher and --fvd (default cpu)")
    ev.add_argument("--no-pairs", action="store_true", help="table rows per scene only")
    ev.add_argument("--overwrite", action="store_true", help="replace an existing JSON / PNG of the same name")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=cmd_evaluate)

    trn = commands.add_parser("train", help="run one training stage (text, vae, base, sync) from a TOML config")
    trn.add_argument("--config", required=True, help="stage config (see configs/)")
    trn.add_argument("--max-steps", type=positive_int, default=None, help="override the config's max_steps")
    trn.add_argument("--restart", action="store_true", help="discard checkpoints instead of resuming")
    trn.add_argument("--quiet", action="store_true", help="no progress bar")
    trn.set_defaults(func=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except Exception as error:
        if not _is_reported_error(error):
            raise
        # In a multi-process run every process checks the same input and fails alike: rank 0 says it once.
        if _rank() == 0:
            print(f"syncammaster {args.command}: error: {app.one_line(error)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"syncammaster {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (e.g. `| head`): stop quietly, as command-line tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    return 0


def _is_reported_error(error: Exception) -> bool:
    """Whether ``error`` is one a command reports in one line. The package's own errors (CameraError,
    CheckpointError, SceneError, ModelFilesError, HubError, ...) are ValueErrors; catching them by that name spares
    commands such as `download` from importing torch. A RankZeroError (rank 0 failed while writing for all) can only
    come from a command that imported ``ranks``."""
    ranks = sys.modules.get(f"{__package__}.ranks")
    return isinstance(error, (app.CommandError, ValueError, FileNotFoundError)) or (
        ranks is not None and isinstance(error, ranks.RankZeroError)
    )


def _rank() -> int:
    """This process's rank (0 when alone), without importing torch.distributed where no command did."""
    ranks = sys.modules.get(f"{__package__}.ranks")
    return ranks.global_rank() if ranks is not None else int(os.environ.get("RANK", "0"))




if __name__ == "__main__":
    sys.exit(main())
