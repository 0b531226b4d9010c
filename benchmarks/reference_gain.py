"""Where the given view of novel-view synthesis is lost: denoising error with it and without it, and the attention
the other views pay to it.

For fixed view groups of a latent cache (``syncammaster cache``; use held-out scenes), fixed noise and a few noise
levels sigma, one view of each group is given: its clean latent at timestep 0, as the pipeline's
``reference_mode="clean"`` and the training's ``reference_view_prob`` give it. The transformer predicts the flow
target (noise - x0) of the other views, and this benchmark reports the MSE of those predictions:

- ``given``: the multi-view module on, the given view clean;
- ``absent``: the multi-view module on, every view noised alike (text-to-views);
- ``no sync``: the multi-view module bypassed (the frozen base: no view can reach another);
- ``same pose``: a group of two copies of one view at one pose, the first given clean; the error of the second.
  A module that carries the given view across would drive it towards zero: the copy is the answer.

``gain %`` = 1 - given / absent: how much the given view lowers the error of the others. Per block, the multi-view
attention's mass on the given view's tokens (mean over the other views' queries, heads and frames; 1/V would be
uniform) and the size of the module's residual against the hidden states it is added to (RMS ratio).

Run from the repository root (a few minutes on a 2-core CPU; the held-out cache as in ``mvs_gain.py``):

    python benchmarks/reference_gain.py --cache runs/heldout/cache
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch
from diffusers.models.embeddings import apply_rotary_emb
from diffusers.models.transformers.transformer_wan import _get_qkv_projections

from syncammaster.app import default_model_dir
from syncammaster.data import LatentViewDataset, collate_views
from syncammaster.data.cache import read_cache_config
from syncammaster.evaluate.report import text_table
from syncammaster.models import SynCamMasterTransformer3DModel
from syncammaster.training.modules import NUM_TRAIN_TIMESTEPS


class AttentionProbe:
    """Forward hooks on every block's MVS step: the attention mass on the given view and the residual's size."""

    def __init__(self, transformer: SynCamMasterTransformer3DModel):
        self.mass = defaultdict(list)  # block -> [mean mass of the other views' queries on the given view]
        self.residual = defaultdict(list)  # block -> [RMS(residual) / RMS(hidden)] of the other views
        self.num_views = self.given = None
        self.handles = []
        for index, block in enumerate(transformer.blocks):
            self.handles.append(block.mvs_attn.register_forward_hook(self._attention_hook(index)))
            self.handles.append(block.register_forward_hook(self._block_hook(index), with_kwargs=True))
        self.enabled = False

    def _others(self, tokens: torch.Tensor, views_dim: int) -> torch.Tensor:
        keep = [v for v in range(self.num_views) if v != self.given]
        return tokens.index_select(views_dim, torch.tensor(keep))

    def _attention_hook(self, index: int):
        def hook(attn, args, output):
            if not self.enabled:
                return
            hidden, rotary = args[0], args[3]  # (B*F, V*H*W, D), 2 x (1, V*H*W, 1, hd)
            query, key, _ = _get_qkv_projections(attn, hidden, None)
            query, key = attn.norm_q(query), attn.norm_k(key)
            query, key = (t.unflatten(2, (attn.heads, -1)) for t in (query, key))  # (B*F, N, heads, hd)
            cos, sin = (table[0, :, 0] for table in rotary)
            query = apply_rotary_emb(query, (cos, sin), use_real=True, use_real_unbind_dim=-1, sequence_dim=1)
            key = apply_rotary_emb(key, (cos, sin), use_real=True, use_real_unbind_dim=-1, sequence_dim=1)
            scores = torch.einsum("bqhd,bkhd->bhqk", query, key) / query.shape[-1] ** 0.5
            probs = scores.softmax(-1)  # (B*F, heads, N, N)
            tokens = probs.shape[-1] // self.num_views
            probs = probs.unflatten(3, (self.num_views, tokens)).sum(-1)  # (B*F, heads, N, V): mass on each view
            probs = probs.unflatten(2, (self.num_views, tokens))  # (B*F, heads, V_q, H*W, V_k)
            self.mass[index].append(float(self._others(probs[..., self.given], 2).mean()))

        return hook

    def _block_hook(self, index: int):
        def hook(block, args, kwargs, output):
            if not self.enabled:
                return
            # The MVS residual alone: the block's MVS step on its self-attention output, recomputed.
            hidden, temb = args[0], args[2]
            shift, scale, gate = (block.scale_shift_table + temb.float()).chunk(6, dim=1)[:3]
            norm = (block.norm1(hidden.float()) * (1 + scale) + shift).type_as(hidden)
            after_self = hidden.float() + block.attn1(norm, None, None, args[3]) * gate
            enabled, self.enabled = self.enabled, False
            after_mvs = block.mvs(after_self.type_as(hidden), temb, kwargs["camera_embedding"],
                                  kwargs["rotary_emb_mvs"], kwargs["num_views"], kwargs["num_frames"])
            self.enabled = enabled
            residual = (after_mvs.float() - after_self).unflatten(0, (-1, self.num_views))  # (B, V, N, D)
            base = after_self.unflatten(0, (-1, self.num_views))
            rms = self._others(residual, 1).pow(2).mean().sqrt() / self._others(base, 1).pow(2).mean().sqrt()
            self.residual[index].append(float(rms))

        return hook


@torch.no_grad()
def predict(transformer, noisy, timestep, context, camera, num_views, chunk):
    out = []
    for start in range(0, len(noisy), chunk):
        part = slice(start, start + chunk)
        kwargs = {"camera_embedding": camera[part], "num_views": num_views} if camera is not None else {}
        out.append(transformer(noisy[part], timestep[part], context[part], return_dict=False, **kwargs)[0])
    return torch.cat(out)


def errors(transformer, batch, sigmas, given, seed, chunk, probe=None):
    """Per sigma: MSE of the flow prediction of the views other than ``given``, for given / absent / no sync."""
    latents = batch["latents"]  # (B, V, C, F, h, w)
    num_views = latents.shape[1]
    x0 = latents.flatten(0, 1)
    camera = batch["camera"].flatten(0, 1)
    context = batch["prompt_embeds"].repeat_interleave(num_views, dim=0)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    is_given = torch.zeros(latents.shape[:2], dtype=torch.bool)
    is_given[:, given] = True
    is_given = is_given.flatten()
    chunk = max(num_views, chunk - chunk % num_views)
    results = {}
    for sigma in sigmas:
        noisy, target = (1 - sigma) * x0 + sigma * noise, noise - x0
        timestep = torch.full((len(x0),), sigma * NUM_TRAIN_TIMESTEPS)
        given_input = torch.where(is_given.view(-1, 1, 1, 1, 1), x0, noisy)
        given_timestep = torch.where(is_given, torch.zeros_like(timestep), timestep)
        if probe is not None:
            probe.enabled, probe.num_views, probe.given = True, num_views, given
            probe.mass.clear()
            probe.residual.clear()
        rows = {"given": predict(transformer, given_input, given_timestep, context, camera, num_views, chunk)}
        if probe is not None:
            probe.enabled = False
            results.setdefault("mass", {})[sigma] = {b: sum(m) / len(m) for b, m in probe.mass.items()}
            results.setdefault("residual", {})[sigma] = {b: sum(m) / len(m) for b, m in probe.residual.items()}
        rows["absent"] = predict(transformer, noisy, timestep, context, camera, num_views, chunk)
        rows["no sync"] = predict(transformer, noisy, timestep, context, None, num_views, chunk)
        for name, prediction in rows.items():
            error = ((prediction - target) ** 2).flatten(1).mean(1)[~is_given].mean()
            results.setdefault(name, {})[sigma] = float(error)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="SynCamMaster folder (default: the shipped small model)")
    parser.add_argument("--cache", required=True, help="latent cache of held-out scenes (syncammaster cache)")
    parser.add_argument("--views", type=int, default=4, help="views per group (default 4)")
    parser.add_argument("--groups", type=int, default=12, help="view groups (default 12)")
    parser.add_argument("--given", type=int, nargs="*", default=[0, 2],
                        help="which view of the group is given, one run each (default: 0 and 2; none: only the "
                        "same-pose test)")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.85, 0.95])
    parser.add_argument("--seed", type=int, default=0, help="seed of the group draws and the noise (default 0)")
    parser.add_argument("--chunk", type=int, default=16, help="videos per forward (default 16)")
    args = parser.parse_args()
    if any(not 0.0 < sigma <= 1.0 for sigma in args.sigmas):
        parser.error(f"--sigmas must lie in (0, 1], got {args.sigmas}")
    if any(not 0 <= g < args.views for g in args.given):
        parser.error(f"--given must name views 0..{args.views - 1}, got {args.given}")

    model = args.model or default_model_dir()
    transformer = SynCamMasterTransformer3DModel.from_pretrained(model, subfolder="transformer").eval()
    config = read_cache_config(args.cache)
    dataset = LatentViewDataset.from_cache(args.cache, num_views=args.views, max_az=60.0, max_el=30.0,
                                           seed=args.seed, length=args.groups,
                                           max_sequence_length=config["max_sequence_length"])
    batch = collate_views([dataset[i] for i in range(len(dataset))])
    print(f"model: {model}; {args.cache}: {args.groups} groups of {args.views} views, noise seed {args.seed}")

    probe = AttentionProbe(transformer)
    for given in args.given:
        started = time.perf_counter()
        result = errors(transformer, batch, args.sigmas, given, args.seed, args.chunk, probe if given == 0 else None)
        rows = [["sigma", "mse given", "mse absent", "mse no sync", "gain % given vs absent", "gain % sync vs no"]]
        for sigma in args.sigmas:
            g, a, n = (result[k][sigma] for k in ("given", "absent", "no sync"))
            rows.append([f"{sigma:.2f}", f"{g:.4f}", f"{a:.4f}", f"{n:.4f}", f"{100 * (1 - g / a):.2f}",
                         f"{100 * (1 - a / n):.2f}"])
        print(f"\nview {given} given ({time.perf_counter() - started:.0f} s)")
        print(text_table(rows))
        if "mass" in result:
            blocks = sorted(result["mass"][args.sigmas[0]])
            header = ["sigma", *[f"b{b}" for b in blocks]]
            print(f"\nattention mass on the given view (uniform: {1 / args.views:.2f}), per block")
            print(text_table([header, *[[f"{s:.2f}", *[f"{result['mass'][s][b]:.3f}" for b in blocks]]
                                        for s in args.sigmas]]))
            print("\nMVS residual RMS / hidden RMS of the other views, per block")
            print(text_table([header, *[[f"{s:.2f}", *[f"{result['residual'][s][b]:.3f}" for b in blocks]]
                                        for s in args.sigmas]]))

    # Same pose: two copies of view 0 at its pose, the first given.
    same = {k: v[:, [0, 0]] if k in ("latents", "camera") else v for k, v in batch.items()}
    result = errors(transformer, same, args.sigmas, 0, args.seed, args.chunk)
    rows = [["sigma", "mse given", "mse absent", "mse no sync", "gain % given vs absent"]]
    for sigma in args.sigmas:
        g, a, n = (result[k][sigma] for k in ("given", "absent", "no sync"))
        rows.append([f"{sigma:.2f}", f"{g:.4f}", f"{a:.4f}", f"{n:.4f}", f"{100 * (1 - g / a):.2f}"])
    print("\nsame pose: two copies of one view, the first given")
    print(text_table(rows))


if __name__ == "__main__":
    main()
