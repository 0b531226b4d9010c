"""``syncammaster cache``: encode a dataset's videos (VAE) and captions (text encoder) once, into a latent cache
(:mod:`syncammaster.data.latent_cache`)."""

from __future__ import annotations

import argparse

from .argtypes import int_at_least

ENCODER_FILES = ["model_index.json", "vae/*", "tokenizer/*", "text_encoder/*"]  # what caching reads of a model repo


def _devices(text: str) -> int | str:
    return text if text == "auto" else int_at_least(1)(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``syncammaster cache``: ROOT, --model, --out, --frames, --height, --width, --batch-size, --strict,
    and more."""
    from ..data.latent_cache import DEFAULT_MAX_SEQUENCE_LENGTH

    parser.add_argument("root", metavar="ROOT", help="dataset root in the SynCamVideo layout (metadata.csv, train/)")
    parser.add_argument(
        "--model",
        required=True,
        metavar="DIR",
        help="Wan or SynCamMaster diffusers folder (vae/, tokenizer/, text_encoder/), or its Hugging Face repo id "
        "(e.g. Wan-AI/Wan2.1-T2V-1.3B-Diffusers: only those parts are fetched)",
    )
    parser.add_argument("--revision", default=None, help="branch, tag or commit of a --model repo id (default: main)")
    parser.add_argument("--out", required=True, metavar="CACHE", help="latent cache folder (new, or one to complete)")
    parser.add_argument("--frames", type=int_at_least(1), default=81, help="first frames of each video, 4k+1 (81)")
    parser.add_argument("--height", type=int_at_least(1), default=480, help="pixels after resize and crop (480)")
    parser.add_argument("--width", type=int_at_least(1), default=832, help="pixels after resize and crop (832)")
    parser.add_argument(
        "--batch-size", type=int_at_least(1), default=1,
        help="videos encoded together (default 1; on a CPU 2-4 is several times faster per video)",
    )
    parser.add_argument(
        "--max-sequence-length", type=int_at_least(1), default=DEFAULT_MAX_SEQUENCE_LENGTH, help="caption tokens (512)"
    )
    parser.add_argument("--strict", action="store_true", help="fail at the first bad file instead of skipping it")
    parser.add_argument("--skip-video-check", action="store_true", help="do not decode the videos when indexing")
    parser.add_argument("--storage-dtype", choices=["fp32", "bf16"], default="fp32", help="stored tensors (fp32)")
    parser.add_argument(
        "--dtype", choices=["auto", "fp32", "bf16"], default="auto", help="text encoder precision (auto: bf16 on GPU)"
    )
    parser.add_argument("--vae-dtype", choices=["fp32", "bf16"], default="fp32", help="VAE precision (fp32)")
    parser.add_argument("--vae-tiling", action="store_true", help="encode in tiles (less memory for large videos)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--lightning", action="store_true", help="encode through Lightning on every available GPU")
    parser.add_argument("--devices", type=_devices, default="auto", help="devices for --lightning (default: all)")
    parser.add_argument("--workers", type=int_at_least(0), default=0, help="processes decoding videos (0)")


def run(args: argparse.Namespace) -> None:
    """Index ``args.root``, load the encoders of ``args.model`` and cache the dataset into ``args.out``."""
    import torch
    from diffusers import AutoencoderKLWan
    from transformers import AutoTokenizer, UMT5EncoderModel

    from ..data.index import DatasetError, SceneIndex
    from ..data.latent_cache import cache_dataset
    from ..hub import resolve_folder
    from ..model_files import check_components
    from ..ranks import global_rank, leave_process_group

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    model_dir = resolve_folder(args.model, args.revision, allow_patterns=ENCODER_FILES)
    absent = [name for name in ("vae", "tokenizer", "text_encoder") if not (model_dir / name).is_dir()]
    if absent:
        raise DatasetError(
            f"{model_dir} has no {'/, '.join(absent)}/; give a Wan2.1 or SynCamMaster diffusers folder as --model"
        )
    check_components(model_dir, ("vae", "tokenizer", "text_encoder"))  # configs readable, weights whole
    on_gpu = torch.cuda.is_available() if args.device is None else torch.device(args.device).type == "cuda"
    text_dtype = (torch.bfloat16 if on_gpu else torch.float32) if args.dtype == "auto" else dtypes[args.dtype]
    index = SceneIndex.build(args.root, strict=args.strict, check_videos=not args.skip_video_check)
    if not len(index):
        raise DatasetError(f"{args.root} has no usable scene: {index.summary()}")
    vae = AutoencoderKLWan.from_pretrained(model_dir, subfolder="vae", dtype=dtypes[args.vae_dtype]).eval()
    if args.vae_tiling:
        vae.enable_tiling()
    tokenizer = AutoTokenizer.from_pretrained(model_dir / "tokenizer")
    text_encoder = UMT5EncoderModel.from_pretrained(model_dir / "text_encoder", dtype=text_dtype).eval()
    report = cache_dataset(
        index,
        vae,
        tokenizer,
        text_encoder,
        args.out,
        num_frames=args.frames,
        height=args.height,
        width=args.width,
        max_sequence_length=args.max_sequence_length,
        batch_size=args.batch_size,
        device=args.device,
        storage_dtype={"fp32": "float32", "bf16": "bfloat16"}[args.storage_dtype],
        num_workers=args.workers,
        use_lightning=args.lightning,
        devices=args.devices,
    )
    rank = global_rank()
    leave_process_group()
    if rank == 0:
        print(f"{report} into {args.out}")
