"""Flags and help texts that several ``syncammaster`` commands share."""

from __future__ import annotations

import argparse

from ..hub import CHECKPOINT_FILE, CHECKPOINT_REPO, WAN_REPO

HUB_FILE_NAMES = f"a Hugging Face repo id ({CHECKPOINT_REPO} means its {CHECKPOINT_FILE}; or OWNER/REPO/FILE)"
REVISION_HELP = "branch, tag or commit of every Hugging Face repo id given (default: main)"
DTYPE_CHOICES = ["auto", "fp32", "bf16", "fp16"]
DTYPE_HELP = "model precision (default: bf16 on GPU, fp32 on CPU)"


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --wan, --checkpoint and --revision: the model a command runs, as local paths or Hub repo ids."""
    parser.add_argument("--model", default=None, help="SynCamMaster diffusers folder or Hugging Face repo id "
                        "(default: the shipped small model)")
    parser.add_argument("--wan", default=None, help=f"Wan2.1-T2V diffusers folder or repo id ({WAN_REPO}, or the "
                        "14B), used with --checkpoint")
    parser.add_argument("--checkpoint", default=None, help=f"released SynCamMaster checkpoint: a file, or "
                        f"{HUB_FILE_NAMES}")
    parser.add_argument("--revision", default=None, help=REVISION_HELP)


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """--device, --dtype, --cpu-offload, --vae-tiling and --vae-slicing: where and how a loaded pipeline runs."""
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto", help=DTYPE_HELP)
    parser.add_argument("--cpu-offload", action="store_true", help="keep only the running model on the GPU")
    parser.add_argument("--vae-tiling", action="store_true", help="decode in tiles (less memory for large videos)")
    parser.add_argument("--vae-slicing", action="store_true", help="decode one view at a time (less memory, slower)")
