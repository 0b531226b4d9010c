"""``syncammaster download {wan,checkpoint,dataset}``: the base model, the released checkpoint or the SynCamVideo
dataset from the Hugging Face Hub, then the flags that use it (:mod:`syncammaster.download`)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``syncammaster download``: KIND, --out, --revision, --repo, --keep-archive, --force-download,
    --quiet."""
    from ..download import DEFAULT_DATASET_DIR, SOURCES

    parser.add_argument("kind", choices=list(SOURCES), metavar="{" + ",".join(SOURCES) + "}",
                        help="; ".join(f"{kind}: {source.summary}" for kind, source in SOURCES.items()))
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="also place the files in this new folder (default: models stay in the Hugging Face "
                        f"cache and are named by repo id; the dataset goes to {DEFAULT_DATASET_DIR})")
    parser.add_argument("--revision", default=None, help="a branch, tag or commit of the repo (default: main)")
    parser.add_argument("--repo", default=None, metavar="OWNER/NAME",
                        help="another repo to fetch (checkpoint: OWNER/NAME or OWNER/NAME/FILE)")
    parser.add_argument("--keep-archive", action="store_true",
                        help="dataset: keep the archive in the Hugging Face cache after unpacking it")
    parser.add_argument("--force-download", action="store_true",
                        help="fetch the files again even if the cache holds them (a damaged archive)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> None:
    """Fetch ``args.kind`` and print the flags that use it."""
    from ..download import download

    download(args.kind, out=args.out, revision=args.revision, repo=args.repo, keep_archive=args.keep_archive,
             force_download=args.force_download, progress=not args.quiet)
