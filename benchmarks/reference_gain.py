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
from collections import defaultdict

import torch
from diffusers.models.embeddings import apply_rotary_emb

from syncammaster.app import default_model_dir
from syncammaster.models import SynCamMasterTransformer3DModel
from syncammaster.models.transformer_syncammaster import self_attention_projections

from harness import Stopwatch, machine_line, text_table
from latent_groups import FlowInputs, add_group_arguments, check_group_arguments, load_groups, predict


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
            query, key, _ = self_attention_projections(attn, hidden)
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


def errors(transformer, batch, sigmas, given, seed, chunk, probe=None):
    """Per sigma: MSE of the flow prediction of the views other than ``given``, for given / absent / no sync."""
    inputs = FlowInputs.of(batch, seed)
    x0, camera, context, num_views = inputs.x0, inputs.camera, inputs.context, inputs.num_views
    is_given = torch.zeros(batch["latents"].shape[:2], dtype=torch.bool)
    is_given[:, given] = True
    is_given = is_given.flatten()
    results = {}
    for sigma in sigmas:
        noisy, target, timestep = inputs.at(sigma)
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
    add_group_arguments(parser, groups=12)
    parser.add_argument("--cache", required=True, help="latent cache of held-out scenes (syncammaster cache)")
    parser.add_argument("--given", type=int, nargs="*", default=[0, 2],
                        help="which view of the group is given, one run each (default: 0 and 2; none: only the "
                        "same-pose test)")
    args = parser.parse_args()
    check_group_arguments(parser, args)
    if any(not 0 <= g < args.views for g in args.given):
        parser.error(f"--given must name views 0..{args.views - 1}, got {args.given}")

    model = args.model or default_model_dir()
    transformer = SynCamMasterTransformer3DModel.from_pretrained(model, subfolder="transformer").eval()
    batch = load_groups(args.cache, args.views, args.groups, args.seed)
    print(machine_line())
    print(f"model: {model}; {args.cache}: {args.groups} groups of {args.views} views, noise seed {args.seed}")

    probe = AttentionProbe(transformer)
    for given in args.given:
        with Stopwatch() as clock:
            result = errors(transformer, batch, args.sigmas, given, args.seed, args.chunk,
                            probe if given == 0 else None)
        rows = [["sigma", "mse given", "mse absent", "mse no sync", "gain % given vs absent", "gain % sync vs no"]]
        for sigma in args.sigmas:
            g, a, n = (result[k][sigma] for k in ("given", "absent", "no sync"))
            rows.append([f"{sigma:.2f}", f"{g:.4f}", f"{a:.4f}", f"{n:.4f}", f"{100 * (1 - g / a):.2f}",
                         f"{100 * (1 - a / n):.2f}"])
        print(f"\nview {given} given ({clock.wall:.0f} s)")
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
