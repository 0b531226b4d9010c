"""``syncammaster train``: one training stage (text, vae, base, sync) from a TOML config."""

from __future__ import annotations

import argparse

from .argtypes import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="stage config (see configs/)")
    parser.add_argument("--max-steps", type=positive_int, default=None, help="override the config's max_steps")
    parser.add_argument("--restart", action="store_true", help="discard checkpoints instead of resuming")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> None:
    from ..ranks import global_rank, leave_process_group
    from ..training import load_config, train

    overrides = {"max_steps": args.max_steps} if args.max_steps is not None else {}
    config = load_config(args.config, overrides)
    folder = train(config, restart=args.restart, progress_bar=not args.quiet)
    rank = global_rank()
    leave_process_group()
    if rank == 0:  # every process of a multi-process run returns here; one reports
        print(f"stage {config.stage}: exported to {folder}/")
