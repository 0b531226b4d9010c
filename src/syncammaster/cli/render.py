"""``syncammaster render``: a folder of procedural multi-camera scenes in the SynCamVideo layout
(:mod:`syncammaster.render.dataset`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``syncammaster render`` flags to ``parser``; :func:`run` takes the parsed arguments."""
    parser.add_argument("--scenes", type=int, default=1000, help="number of scenes (default 1000)")
    parser.add_argument("--cameras", type=int, default=None,
                        help="static cameras per scene, drawn on a hemisphere around it (default 10)")
    parser.add_argument("--rig", default=None, metavar="PRESET_OR_JSON",
                        help="film every scene with these cameras instead (a preset or a camera_extrinsics.json), "
                        "moved so that they look at the scene's centre")
    parser.add_argument("--views", type=int, default=None, help="with --rig: use its first N cameras")
    parser.add_argument("--frames", type=int, default=17, help="frames per video, 4k+1 (default 17)")
    parser.add_argument("--size", type=int, default=128, help="square video side in pixels, a multiple of 16")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--out", required=True, help="output folder (an interrupted run resumes in it)")
    parser.add_argument("--workers", type=int, default=None, help="parallel processes (default: all CPU cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    return parser


def run(args: argparse.Namespace) -> Path:
    """Render the dataset the parsed arguments describe; ValueError for bad input."""
    from ..cameras import CameraRig
    from ..render.dataset import METADATA_FILE, SCENES_DIR, render_missing_scenes

    rig = None
    if args.rig is not None:
        if args.cameras is not None:
            raise ValueError("give either --cameras (drawn per scene) or --rig (with --views), not both")
        rig = CameraRig.load(args.rig, num_views=args.views)
        if not rig.is_static and not args.quiet:
            print(f"--rig {args.rig}: the cameras move; every scene is filmed from their first frame's poses")
    elif args.views is not None:
        raise ValueError("--views picks cameras of --rig; without a rig use --cameras N")
    num_views = rig.num_views if rig is not None else (10 if args.cameras is None else args.cameras)
    out, rendered = render_missing_scenes(
        args.out, args.scenes, num_views, args.frames, args.size, args.seed, args.workers, not args.quiet, rig
    )
    if not args.quiet:
        skipped = f" ({args.scenes - rendered} were already complete)" if rendered < args.scenes else ""
        seen = f"the {num_views} cameras of {args.rig}" if rig is not None else f"{num_views} cameras"
        print(
            f"wrote {args.scenes} scenes x {seen}, {args.frames} frames at {args.size}x{args.size}"
            f"{skipped}, to {out / SCENES_DIR}/ and {out / METADATA_FILE}"
        )
    return out
