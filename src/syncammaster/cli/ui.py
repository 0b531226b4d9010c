"""``syncammaster ui``: the web app (:mod:`syncammaster.ui`): load the pipeline once, then serve the page until
interrupted."""

from __future__ import annotations

import argparse

from .argtypes import positive_int
from .options import add_device_arguments, add_model_arguments


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``syncammaster ui`` flags to ``parser``; :func:`run` takes the parsed arguments."""
    from ..ui import DEFAULT_FPS

    add_model_arguments(parser)  # --model, --wan, --checkpoint, --revision: folders, files or Hub repo ids
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1; 0.0.0.0: all)")
    parser.add_argument("--port", type=positive_int, default=7860, help="port (default 7860)")
    parser.add_argument("--out", default=None,
                        help="folder for the generated scene folders and zips (default: a new temporary folder)")
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS, help="frame rate of the written videos (default 15)")
    add_device_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> None:
    import shutil
    import tempfile
    from pathlib import Path

    from .. import ui
    from ..app import CommandError, load_pipeline

    if args.fps <= 0:
        raise CommandError(f"--fps must be positive, got {args.fps}")
    ui.check_installed()  # before the minutes of loading the model
    pipe = load_pipeline(args)
    pipe.set_progress_bar_config(disable=True)
    out_dir = Path(args.out) if args.out is not None else Path(tempfile.mkdtemp(prefix="syncammaster-ui-"))
    # The released checkpoint was trained text-only: it takes a given view only re-noised (training-free).
    reference_mode = "renoise" if args.wan is not None else "clean"
    app = ui.build_app(pipe, out_dir, reference_mode=reference_mode, fps=args.fps)
    print(f"scene folders go to {out_dir}/")
    try:
        ui.serve(app, out_dir, args.host, args.port)
    except OSError:
        if args.out is None:  # the temporary folder made above holds nothing yet
            shutil.rmtree(out_dir, ignore_errors=True)
        raise CommandError(
            f"cannot serve on {args.host}:{args.port}: the port is in use or the address is not this machine's; "
            "pass another --port or --host"
        ) from None
