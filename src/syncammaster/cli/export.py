"""``syncammaster export``: a scene folder for reconstruction tools, nerfstudio (a static scene) or D-NeRF (with
times) (:mod:`syncammaster.export`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .argtypes import non_negative_int


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``syncammaster export`` flags to ``parser``; :func:`run` takes the parsed arguments."""
    from ..export import EXPORT_FORMATS

    parser.add_argument("scene", metavar="SCENE", help="a scene folder (generated or rendered)")
    parser.add_argument("--format", choices=EXPORT_FORMATS, default="nerfstudio",
                        help="nerfstudio: images/ + transforms.json, read by nerfstudio as a static scene (default); "
                        "dnerf: images/ + transforms_{train,val,test}.json with times, for dynamic methods "
                        "(nerfstudio's dnerf, 4D Gaussian splatting)")
    parser.add_argument("--out", required=True, help="output folder (new or empty)")
    parser.add_argument("--frame", type=non_negative_int, default=None, metavar="K",
                        help="nerfstudio: export time step K alone, every camera (a static scene)")
    parser.add_argument("--holdout", default=None, metavar="CAMERA",
                        help="dnerf: the camera held out for val and test, an index or a name (default: the middle "
                        "one of the rig)")
    return parser


def run(args: argparse.Namespace) -> Path:
    """Export ``args.scene``: SceneError / CameraError (one line) for bad input."""
    from ..export import DNERF_SPLITS, IMAGES_DIR, TRANSFORMS_FILE, export_dnerf, export_nerfstudio
    from ..scene import SceneError

    if args.format == "dnerf":
        if args.frame is not None:
            raise SceneError("--frame is for --format nerfstudio; the D-NeRF layout holds every time step")
        out = export_dnerf(args.scene, args.out, args.holdout)
        files = ", ".join(f"transforms_{split}.json" for split in DNERF_SPLITS)
    else:
        if args.holdout is not None:
            raise SceneError("--holdout is for --format dnerf; nerfstudio's parser chooses its own eval images")
        out = export_nerfstudio(args.scene, args.out, args.frame)
        files = TRANSFORMS_FILE
    num_images = sum(1 for _ in (out / IMAGES_DIR).iterdir())
    print(f"wrote {num_images} images and {files} ({args.format}) to {out}/")
    return out
