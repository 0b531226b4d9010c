"""``syncammaster sample-list``: the view groups of each scene of a dataset (which cameras train together), as
JSON (:mod:`syncammaster.data.views`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .argtypes import positive_degrees, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``syncammaster sample-list``: ROOT, --views, --max-azimuth, --max-elevation, --out, --strict."""
    from ..data.views import DEFAULT_MAX_AZIMUTH, DEFAULT_MAX_ELEVATION, DEFAULT_NUM_VIEWS

    parser.add_argument("root", metavar="ROOT", help="dataset root in the SynCamVideo layout (metadata.csv, train/)")
    parser.add_argument("--out", required=True, metavar="FILE", help="JSON file to write: {scene: [[cam, ...], ...]}")
    parser.add_argument(
        "--views", type=positive_int, default=DEFAULT_NUM_VIEWS, help=f"cameras per group ({DEFAULT_NUM_VIEWS})"
    )
    parser.add_argument(
        "--max-azimuth",
        type=positive_degrees,
        default=DEFAULT_MAX_AZIMUTH,
        help=f"largest azimuth difference within a group, degrees, exclusive (default {DEFAULT_MAX_AZIMUTH:g})",
    )
    parser.add_argument(
        "--max-elevation",
        type=positive_degrees,
        default=DEFAULT_MAX_ELEVATION,
        help=f"largest elevation difference within a group, degrees, exclusive (default {DEFAULT_MAX_ELEVATION:g})",
    )
    parser.add_argument("--strict", action="store_true", help="fail at the first bad file instead of skipping it")
    parser.add_argument(
        "--skip-video-check", action="store_true", help="only check that videos exist (do not decode them)"
    )


def run(args: argparse.Namespace) -> None:
    """Build the index of ``args.root`` and write its sample list to ``args.out``; prints one summary line."""
    from ..data.index import DatasetError, SceneIndex
    from ..data.views import write_sample_list

    out = Path(args.out)
    if out.exists():
        raise DatasetError(f"{out} already exists; choose another --out file (existing files are never replaced)")
    index = SceneIndex.build(args.root, strict=args.strict, check_videos=not args.skip_video_check)
    sample_list = write_sample_list(index, out, args.views, args.max_azimuth, args.max_elevation)
    num_groups = sum(len(groups) for groups in sample_list.values())
    without = sum(1 for groups in sample_list.values() if not groups)
    print(
        f"wrote {num_groups} groups of {args.views} views from {len(sample_list)} scenes to {out}"
        + (f" ({without} scenes have none)" if without else "")
    )
