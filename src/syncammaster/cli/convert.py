"""``syncammaster convert``: a released SynCamMaster checkpoint -> a diffusers folder (the transformer, or with
``--wan`` the whole pipeline)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..hub import WAN_REPO
from .argtypes import positive_int
from .options import HUB_FILE_NAMES, REVISION_HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help=f"released SynCamMaster checkpoint: a file, or {HUB_FILE_NAMES}")
    parser.add_argument("--out", required=True, help="output folder (new or empty)")
    parser.add_argument("--wan", default=None, help="also pack a Wan2.1-T2V diffusers folder's components (a folder "
                        f"or a repo id such as {WAN_REPO}): a pipeline")
    parser.add_argument("--revision", default=None, help=REVISION_HELP)
    parser.add_argument("--heads", type=positive_int, default=None, help="attention heads (default: width / 128)")
    parser.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="bf16", help="stored precision")


def run(args: argparse.Namespace) -> None:
    import torch

    from ..app import CommandError
    from ..atomic import save_atomically
    from ..hub import resolve_file
    from ..model_files import check_checkpoint_file
    from ..models import SynCamMasterTransformer3DModel

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"{out} is a file; choose a new --out folder")
    if out.exists() and any(out.iterdir()):
        raise CommandError(f"{out} exists and is not empty; choose a new --out folder")
    checkpoint = check_checkpoint_file(resolve_file(args.checkpoint, args.revision))
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    if args.wan is not None:
        from ..pipeline import SynCamMasterPipeline

        model = SynCamMasterPipeline.from_wan(args.wan, checkpoint, torch_dtype=dtype, revision=args.revision)
    else:
        model = SynCamMasterTransformer3DModel.from_official_checkpoint(
            checkpoint, torch_dtype=dtype, **({"num_attention_heads": args.heads} if args.heads else {})
        )
    save_atomically(model.save_pretrained, out)
    print(f"wrote {'a SynCamMaster pipeline' if args.wan else 'a SynCamMaster transformer'} folder to {out}/")
