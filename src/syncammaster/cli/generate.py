"""``syncammaster generate``: a prompt and a rig -> one video per camera, in a scene folder (or, with ``--prompts``,
many scenes into a data set: :mod:`syncammaster.batch`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..step_caches import STEP_CACHE_METHODS as CACHE_METHODS
from .argtypes import (
    frame_count,
    lora_file_and_scale,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    size,
)
from .options import add_device_arguments, add_model_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt", help="the caption of the scene")
    what.add_argument("--prompts", metavar="FILE",
                      help="many scenes, one a line, into the data set --out DIR (DIR/train/generated/sceneNNNN/ and "
                      "DIR/metadata.csv; a second run skips finished scenes): JSON Lines with the keys prompt, rig, "
                      "views, seed, video, video_view, negative_prompt (all but prompt optional; the flags give what "
                      "a line leaves out; relative paths start from FILE's folder), or plain text, one prompt a line. "
                      "Scene k without a seed of its own is seeded from --seed and k")
    parser.add_argument("--rig", default="arc",
                        help="a preset (see 'syncammaster cameras') or a camera_extrinsics.json")
    parser.add_argument("--views", type=positive_int, default=None, help="use the first N cameras of the rig")
    parser.add_argument("--frames", type=frame_count, help="video frames, 4k+1 (default: the model's; 17 for the "
                        "shipped model, 81 for the released weights)")
    parser.add_argument("--height", type=size, help="pixels, a multiple of 16 (default: the model's; 128 shipped, 480 "
                        "released)")
    parser.add_argument("--width", type=size, help="pixels, a multiple of 16 (default: the model's; 128 shipped, 832 "
                        "released)")
    parser.add_argument("--steps", type=positive_int, default=50, help="denoising steps (default 50)")
    parser.add_argument("--guidance-scale", type=float, default=None,
                        help="classifier-free guidance (default: the model's; 5.0 for the shipped and released "
                        "weights)")
    parser.add_argument("--negative-prompt", default=None,
                        help="negative caption (default: the model's; Wan's for the released weights)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="noise seed (default 0)")
    parser.add_argument("--out", required=True, help="output scene folder (with --prompts: the data set folder)")
    add_model_arguments(parser)
    parser.add_argument("--video", default=None, metavar="FILE",
                        help="novel views: this video is one camera's view and the others are generated around it "
                        "(upright as players show it; --frames frames from --video-start, sampled at --video-fps, "
                        "resized and centre-cropped to the output size)")
    parser.add_argument("--video-fps", type=positive_float, default=None, metavar="F",
                        help="with --video: sample it at F frames per second (default: the model's training rate, "
                        "15; a 60 fps clip gives every 4th frame)")
    parser.add_argument("--video-start", type=non_negative_float, default=0.0, metavar="SECONDS",
                        help="with --video: the second of the clip to start at (default 0)")
    parser.add_argument("--video-view", default="0", metavar="K",
                        help="with --video: the camera that filmed it, an index into the rig (default 0) or a name")
    parser.add_argument("--reference-mode", choices=["clean", "renoise"], default=None,
                        help="with --video: 'clean' for models fine-tuned for novel views (the shipped one, default), "
                        "'renoise' for text-only models (default with --wan: the released checkpoint)")
    parser.add_argument("--no-sync", action="store_true", help="bypass the multi-view synchronization (ablation)")
    parser.add_argument("--no-novel-view-adapter", action="store_true",
                        help="with --video: do not use the model's novel-view LoRA (its novel_view_lora/), the model's "
                        "own weights only (ablation)")
    parser.add_argument("--fps", type=positive_float, default=None,
                        help="frame rate of the written videos (default: the rate their frames represent: --video's "
                        "sampling rate, else the model's training rate, 15)")
    add_device_arguments(parser)
    parser.add_argument("--cache", choices=list(CACHE_METHODS), default=None, metavar="NAME",
                        help="step cache: skip work between neighbouring denoising steps with a diffusers cache: "
                        + "; ".join(f"{name}: {method.summary}" for name, method in CACHE_METHODS.items())
                        + " (default: none; recommended: taylorseer-lite; speed and fidelity on the shipped model: "
                        "benchmarks/RESULTS.md, 'Step caches')")
    parser.add_argument("--cache-threshold", type=float, default=None, metavar="X",
                        help="the step cache's knob: "
                        + "; ".join(f"{name}: {method.knob} (default {method.default:g})"
                                    for name, method in CACHE_METHODS.items()))
    parser.add_argument("--lora", type=lora_file_and_scale, action="append", default=[], metavar="FILE[:SCALE]",
                        help="a LoRA for the transformer (diffusers/peft keys, or the original Wan/kohya names; may "
                        "include the multi-view layers), at SCALE (default 1); repeat for several")
    parser.add_argument("--compile", action="store_true",
                        help="compile the transformer's repeated blocks (torch.compile, regional): the first scene "
                        "pays for compiling, the later ones run the compiled blocks; meant for --prompts runs on a GPU "
                        "(what it gains on a CPU: RESULTS.md, 'Compiled generation')")
    parser.add_argument("--ranks-per-scene", type=positive_int, default=1, metavar="K",
                        help="with --prompts under torchrun: processes sharing each scene (its guidance branches, "
                        "then its views); the processes form groups of K and each group makes its share of the scenes "
                        "(default 1: every process makes whole scenes)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def run(args: argparse.Namespace) -> None:
    from .. import app

    if args.prompts is not None:  # many scenes: see syncammaster.batch
        from ..batch import run_batch

        return run_batch(args)
    if args.ranks_per_scene != 1:
        raise app.CommandError("--ranks-per-scene needs --prompts FILE; one --prompt is shared by all the processes")
    rig_plot = None
    try:
        with app.start_up():  # imports and loading with the cycle collector paused
            # 1. Check inputs and the output folder before any work.
            from ..cameras import CameraRig

            rig = CameraRig.load(args.rig, num_views=args.views)
            out = Path(args.out)
            app.check_out_dir_free(out, rig)
            clip, reference_view, defaults = None, 0, None
            if args.video is not None:
                # The given video is read now, before the model loads, against the model's defaults (its config).
                from ..model_files import video_defaults

                reference_view = app.reference_view_index(rig, args.video_view)
                defaults = video_defaults(None if args.wan is not None else args.model or app.default_model_dir())
                clip = app.read_reference_video(args.video, args.frames or int(defaults["num_frames"]),
                                                args.video_fps or defaults["fps"], args.video_start)
            elif args.video_view != "0" or args.reference_mode is not None or args.video_fps or args.video_start:
                raise app.CommandError("--video-view, --video-fps, --video-start and --reference-mode need --video "
                                       "FILE (the given view)")
            cache_threshold = app.check_step_cache(args)
            several_processes = int(os.environ.get("WORLD_SIZE", "1")) > 1
            if args.cache is not None and several_processes:
                raise app.CommandError("--cache does not combine with several processes (each would skip different "
                                       "steps); drop --cache or run one process")
            if args.compile:
                from ..compilation import check_compile

                check_compile(args.device)
            # One process alone draws rig.png beside the imports and loading (forked before any thread pool runs).
            rig_plot = None if several_processes else app.BackgroundRigPlot(rig, args.rig)

            # 2. Load the model (under torchrun, the processes share the work of the sample: syncammaster.parallel).
            group = app.join_processes(args)
            if clip is not None and not args.quiet:
                height, width = args.height or defaults["height"], args.width or defaults["width"]
                same_size = clip.frames.shape[1:3] == (height, width)
                resized = "" if same_size else f"; resized and centre-cropped to {width}x{height}"
                print(f"--video: {clip.describe()}{resized}; it is camera {rig.names[reference_view]}")
            pipe = app.load_pipeline(args, novel_view_adapter=args.video is not None)
            app.add_loras_and_step_cache(pipe, args, cache_threshold)
            if args.compile:
                from ..compilation import compile_transformer

                compile_transformer(pipe)
            pipe.set_progress_bar_config(desc="denoising", disable=args.quiet)

        # 3. Generate.
        scene = app.generate_scene(pipe, args, args.prompt, rig, args.seed, args.negative_prompt, clip,
                                   reference_view, group)
        if scene is None:
            return  # rank 0 writes the scene

        # 4. Write the scene folder (the given video is its camera's video, as resized).
        app.write_generated_scene(scene, out, rig_name=args.rig, rig_plot=rig_plot)
    finally:
        if rig_plot is not None:
            rig_plot.close()
    if not args.quiet:
        num_frames, height, width = scene.videos[0].shape[:3]  # the model's own size where the command named none
        print(f"wrote {rig.num_views} videos of {num_frames} frames at {width}x{height} to {out}/")
