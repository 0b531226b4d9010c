"""``syncammaster cameras``: list the rig presets, or show, plot or export one rig."""

from __future__ import annotations

import argparse
from pathlib import Path

from .argtypes import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rig", default=None, help="a preset or a camera_extrinsics.json")
    parser.add_argument("--views", type=positive_int, default=None, help="use the first N cameras")
    parser.add_argument("--plot", default=None, metavar="FILE.png", help="draw the cameras to a PNG")
    parser.add_argument("--export", default=None, metavar="FILE.json",
                        help="write a SynCamVideo camera_extrinsics.json")
    parser.add_argument("--frames", type=positive_int, default=1, help="frames written by --export (default 1)")


def run(args: argparse.Namespace) -> None:
    from ..app import CommandError
    from ..cameras import CameraRig, list_presets

    if args.rig is None:
        if args.plot or args.export or args.views:
            raise CommandError("--plot, --export and --views need --rig PRESET_OR_JSON")
        width = max(len(name) for name in list_presets())
        for name, description in list_presets().items():
            print(f"{name:<{width}}  {description}")
        return
    rig = CameraRig.load(args.rig, num_views=args.views)
    print(rig)
    for target in (args.plot, args.export):
        if target is not None and Path(target).exists():
            raise CommandError(f"{target} already exists; choose another file name")
    if args.plot:
        rig.plot(args.plot, title=f"{rig.num_views} cameras: {args.rig}")
        print(f"wrote {args.plot}")
    if args.export:
        rig.to_syncamvideo_json(args.export, num_frames=args.frames)
        print(f"wrote {args.export}")
