"""Tiny random SynCamMaster pipelines built in the tests (no downloads)."""

import torch
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
from transformers import UMT5Config, UMT5EncoderModel

from syncammaster import SynCamMasterPipeline, SynCamMasterTransformer3DModel
from syncammaster.text import build_caption_tokenizer

CAPTIONS = [
    "a red sphere bounces on a checkered floor",
    "a blue cube slides across a wooden floor",
    "two green cylinders spin near a yellow cone",
]
TEXT_DIM = 16


def tiny_pipeline(seed: int = 0) -> SynCamMasterPipeline:
    torch.manual_seed(seed)
    tokenizer = build_caption_tokenizer(CAPTIONS)
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tokenizer),
            d_model=TEXT_DIM,
            d_kv=8,
            d_ff=32,
            num_layers=1,
            num_heads=2,
            relative_attention_num_buckets=8,
        )
    ).eval()
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    ).eval()
    base = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=TEXT_DIM,
        freq_dim=16,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
    )
    transformer = SynCamMasterTransformer3DModel.from_wan(base)
    # Give the MVS module non-zero weights so that synchronization really changes the output.
    with torch.no_grad():
        for p in transformer.mvs_parameters():
            p.add_(0.05 * torch.randn_like(p))
    return SynCamMasterPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        transformer=transformer.eval(),
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0),
        focal_length_per_side=0.9,
    )
