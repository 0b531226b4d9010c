"""A straightforward, independent re-statement of the released SynCamMaster DiT math (docs/architecture.md,
section 1).

It works on a state dict with the released (original Wan) key names and plain torch functions, deliberately sharing
no code with the product: RoPE as complex rotations in float64, attention written out, every tensor named by shape.
Used only by the tests to check ``SynCamMasterTransformer3DModel.from_official_checkpoint``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class RefConfig:
    dim: int = 48  # D (head dim 24: the released RoPE split (8, 8, 8) then equals diffusers')
    num_heads: int = 2
    num_layers: int = 2
    ffn_dim: int = 48
    in_channels: int = 4
    out_channels: int = 4
    text_dim: int = 24
    freq_dim: int = 16
    patch: tuple[int, int, int] = (1, 2, 2)
    eps: float = 1e-6


def official_state_dict_shapes(cfg: RefConfig) -> dict[str, tuple[int, ...]]:
    """Every key of a released SynCamMaster checkpoint, with its shape, written out from the released layout."""
    d, p = cfg.dim, cfg.patch
    shapes = {
        "patch_embedding.weight": (d, cfg.in_channels, *p),
        "patch_embedding.bias": (d,),
        "text_embedding.0.weight": (d, cfg.text_dim),
        "text_embedding.0.bias": (d,),
        "text_embedding.2.weight": (d, d),
        "text_embedding.2.bias": (d,),
        "time_embedding.0.weight": (d, cfg.freq_dim),
        "time_embedding.0.bias": (d,),
        "time_embedding.2.weight": (d, d),
        "time_embedding.2.bias": (d,),
        "time_projection.1.weight": (6 * d, d),
        "time_projection.1.bias": (6 * d,),
        "head.modulation": (1, 2, d),
        "head.head.weight": (cfg.out_channels * math.prod(p), d),
        "head.head.bias": (cfg.out_channels * math.prod(p),),
    }
    for i in range(cfg.num_layers):
        b = f"blocks.{i}."
        for attn in ("self_attn", "cross_attn", "mvs_attn"):
            for lin in ("q", "k", "v", "o"):
                shapes[f"{b}{attn}.{lin}.weight"] = (d, d)
                shapes[f"{b}{attn}.{lin}.bias"] = (d,)
            shapes[f"{b}{attn}.norm_q.weight"] = (d,)
            shapes[f"{b}{attn}.norm_k.weight"] = (d,)
        shapes[f"{b}norm3.weight"] = (d,)
        shapes[f"{b}norm3.bias"] = (d,)
        shapes[f"{b}ffn.0.weight"] = (cfg.ffn_dim, d)
        shapes[f"{b}ffn.0.bias"] = (cfg.ffn_dim,)
        shapes[f"{b}ffn.2.weight"] = (d, cfg.ffn_dim)
        shapes[f"{b}ffn.2.bias"] = (d,)
        shapes[f"{b}modulation"] = (1, 6, d)
        shapes[f"{b}modulation_mvs"] = (1, 3, d)
        shapes[f"{b}cam_encoder.weight"] = (d, 12)
        shapes[f"{b}cam_encoder.bias"] = (d,)
        shapes[f"{b}projector.weight"] = (d, d)
        shapes[f"{b}projector.bias"] = (d,)
    return shapes


def random_official_state_dict(cfg: RefConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in the released format; every tensor non-zero so each path of the math is exercised."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in official_state_dict_shapes(cfg).items():
        fan_in = shape[1] if len(shape) >= 2 else shape[0]
        tensor = torch.randn(shape, generator=generator) / math.sqrt(fan_in)
        if name.endswith(("norm_q.weight", "norm_k.weight", "norm3.weight")):
            tensor = 1.0 + 0.1 * tensor  # norm gains around one
        state[name] = tensor
    return state


def _rope_table(dim: int, length: int) -> torch.Tensor:
    """(length, dim/2) complex rotations of one RoPE axis."""
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    angles = torch.outer(torch.arange(length, dtype=torch.float64), inv_freq)
    return torch.polar(torch.ones_like(angles), angles)


def _rope_grid(head_dim: int, first: int, height: int, width: int) -> torch.Tensor:
    """(first*height*width, head_dim/2) complex rotations over the 3 axes (first axis = frame, or view for MVS)."""
    dim_hw = head_dim // 3
    dim_first = head_dim - 2 * dim_hw
    t_first = _rope_table(dim_first, first)[:, None, None, :].expand(first, height, width, -1)
    t_h = _rope_table(dim_hw, height)[None, :, None, :].expand(first, height, width, -1)
    t_w = _rope_table(dim_hw, width)[None, None, :, :].expand(first, height, width, -1)
    return torch.cat([t_first, t_h, t_w], dim=-1).reshape(first * height * width, -1)


def _apply_rope(x: torch.Tensor, rot: torch.Tensor, heads: int) -> torch.Tensor:
    """x (N, S, heads*hd) -> rotated, adjacent channel pairs as complex numbers."""
    n, s, c = x.shape
    pairs = x.double().reshape(n, s, heads, c // heads // 2, 2)
    rotated = torch.view_as_complex(pairs.contiguous()) * rot[None, :, None, :]
    return torch.view_as_real(rotated).reshape(n, s, c).to(x.dtype)


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _attention(sd, prefix, x, context, heads, eps, rot=None):
    """Released attention: q/k/v/o linears with bias, RMSNorm over the full width on q and k, optional RoPE."""
    context = x if context is None else context
    q = _rms(F.linear(x, sd[prefix + "q.weight"], sd[prefix + "q.bias"]), sd[prefix + "norm_q.weight"], eps)
    k = _rms(F.linear(context, sd[prefix + "k.weight"], sd[prefix + "k.bias"]), sd[prefix + "norm_k.weight"], eps)
    v = F.linear(context, sd[prefix + "v.weight"], sd[prefix + "v.bias"])
    if rot is not None:
        q, k = _apply_rope(q, rot, heads), _apply_rope(k, rot, heads)
    n, s, c = q.shape
    hd = c // heads
    q = q.reshape(n, s, heads, hd).transpose(1, 2)  # (N, heads, S, hd)
    k = k.reshape(n, -1, heads, hd).transpose(1, 2)
    v = v.reshape(n, -1, heads, hd).transpose(1, 2)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(n, s, c)
    return F.linear(out, sd[prefix + "o.weight"], sd[prefix + "o.bias"])


def reference_forward(sd, cfg: RefConfig, latents, timestep, context, camera, num_views):
    """latents (B*V, C, F, H, W); timestep (B*V,); context (B*V, L, text_dim); camera (B*V, F, 12) or None."""
    bv, _, frames_in, height_in, width_in = latents.shape
    pt, ph, pw = cfg.patch
    f, h, w = frames_in // pt, height_in // ph, width_in // pw
    b, v, d, heads = bv // num_views, num_views, cfg.dim, cfg.num_heads
    hd = d // heads

    half = cfg.freq_dim // 2
    angles = timestep.double()[:, None] * torch.pow(10000.0, -torch.arange(half, dtype=torch.float64) / half)
    sinusoid = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1).float()  # (B*V, freq_dim)
    t = F.linear(
        F.silu(F.linear(sinusoid, sd["time_embedding.0.weight"], sd["time_embedding.0.bias"])),
        sd["time_embedding.2.weight"],
        sd["time_embedding.2.bias"],
    )  # (B*V, D)
    t_mod = F.linear(F.silu(t), sd["time_projection.1.weight"], sd["time_projection.1.bias"]).reshape(bv, 6, d)
    ctx = F.linear(
        F.gelu(F.linear(context, sd["text_embedding.0.weight"], sd["text_embedding.0.bias"]), approximate="tanh"),
        sd["text_embedding.2.weight"],
        sd["text_embedding.2.bias"],
    )

    x = F.conv3d(latents, sd["patch_embedding.weight"], sd["patch_embedding.bias"], stride=cfg.patch)
    x = x.flatten(2).transpose(1, 2)  # (B*V, F*H*W, D)
    rot = _rope_grid(hd, f, h, w)
    rot_mvs = _rope_grid(hd, v, h, w)

    for i in range(cfg.num_layers):
        p = f"blocks.{i}."
        mod = sd[p + "modulation"] + t_mod  # (B*V, 6, D)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=1)
        y = F.layer_norm(x, (d,), eps=cfg.eps) * (1 + scale_msa) + shift_msa
        x = x + gate_msa * _attention(sd, p + "self_attn.", y, None, heads, cfg.eps, rot)

        if camera is not None:
            shift, scale, gate = (sd[p + "modulation_mvs"] + t_mod[:, 0:3]).chunk(3, dim=1)
            y = F.layer_norm(x, (d,), eps=cfg.eps) * (1 + scale) + shift
            cam = F.linear(camera, sd[p + "cam_encoder.weight"], sd[p + "cam_encoder.bias"])  # (B*V, F, D)
            y = y + cam[:, :, None, :].expand(bv, f, h * w, d).reshape(bv, f * h * w, d)
            # (b v) (f hw) d -> (b f) (v hw) d
            y = y.reshape(b, v, f, h * w, d).permute(0, 2, 1, 3, 4).reshape(b * f, v * h * w, d)
            out = _attention(sd, p + "mvs_attn.", y, None, heads, cfg.eps, rot_mvs)
            out = F.linear(out, sd[p + "projector.weight"], sd[p + "projector.bias"])
            out = out.reshape(b, f, v, h * w, d).permute(0, 2, 1, 3, 4).reshape(bv, f * h * w, d)
            x = x + gate * out

        y = F.layer_norm(x, (d,), sd[p + "norm3.weight"], sd[p + "norm3.bias"], eps=cfg.eps)
        x = x + _attention(sd, p + "cross_attn.", y, ctx, heads, cfg.eps)
        y = F.layer_norm(x, (d,), eps=cfg.eps) * (1 + scale_mlp) + shift_mlp
        ffn = F.linear(
            F.gelu(F.linear(y, sd[p + "ffn.0.weight"], sd[p + "ffn.0.bias"]), approximate="tanh"),
            sd[p + "ffn.2.weight"],
            sd[p + "ffn.2.bias"],
        )
        x = x + gate_mlp * ffn

    shift, scale = (sd["head.modulation"] + t[:, None, :]).chunk(2, dim=1)
    x = F.linear(
        F.layer_norm(x, (d,), eps=cfg.eps) * (1 + scale) + shift, sd["head.head.weight"], sd["head.head.bias"]
    )  # (B*V, F*H*W, pt*ph*pw*C)
    x = x.reshape(bv, f, h, w, pt, ph, pw, cfg.out_channels)
    return x.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(bv, cfg.out_channels, f * pt, h * ph, w * pw)
