"""The SynCamMaster transformer: Wan2.1's DiT with a multi-view synchronization (MVS) module in every block.

Everything Wan already has (patch embedding, time/text conditioning, self-attention, cross-attention, FFN, output
head, 3-axis RoPE) is diffusers' own ``WanTransformer3DModel`` code, imported unchanged. This file adds only the
MVS step of SynCamMaster (Bai et al., ICLR 2025), inserted between self-attention and cross-attention::

    shift, scale, gate = scale_shift_table_mvs + temb[:, 0:3]
    y = LayerNorm(x) * (1 + scale) + shift + cam_encoder(camera)          # camera broadcast over each frame
    x = x + gate * projector(mvs_attn(regroup(y)))                        # attention across views, per frame

Notation: B prompts, V views, F latent frames, H x W tokens per frame after the (1, 2, 2) patch embedding, D model
width. Hidden states are ``(B*V, F*H*W, D)`` with views folded into the batch, view-major (index = b * V + v). The
MVS attention regroups them to ``(B*F, V*H*W, D)``: the tokens of one time step across all views of one prompt.
Its RoPE runs over (view, h, w), with the view index taking the place of the frame index.

One file per model family, as diffusers keeps its models: the block, the model and the released-checkpoint loader.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
import torch.nn as nn
from diffusers.configuration_utils import register_to_config
from diffusers.hooks import HookRegistry, ModelHook
from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry
from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.embeddings import apply_rotary_emb
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401  (see below)
from diffusers.models.normalization import FP32LayerNorm
from diffusers.models.transformers.transformer_wan import (
    WanAttention,
    WanAttnProcessor,
    WanTransformer3DModel,
    WanTransformerBlock,
)
from diffusers.utils import apply_lora_scale

from ..hub import resolve_file
from ..parallel import ViewSplit

# ``ModelMixin`` is imported above because diffusers' pipeline loader resolves a custom component's base class by
# looking it up in the module that defines the component (``model_index.json`` names this module).

# Every released Wan2.1 size uses 128-dimensional attention heads (1.3B: 12 heads, 14B: 40 heads).
WAN_ATTENTION_HEAD_DIM = 128
# One camera pose as fed to the model: the top 3x4 of a relative camera-to-world matrix, flattened row-major.
CAMERA_EMBEDDING_DIM = 12
# Names of the MVS parameters inside a block (also the released checkpoint's names, after diffusers' renaming).
MVS_MODULE_NAMES = ("cam_encoder", "projector", "mvs_attn", "scale_shift_table_mvs")
# The cache context every forward runs in while a cache is enabled, and the name of the hook that opens it.
DENOISE_CACHE_CONTEXT = "denoise"
DENOISE_STEP_HOOK = "syncammaster_denoise_step"


class CheckpointError(ValueError):
    """A checkpoint does not match the SynCamMaster transformer it is loaded into."""


class SynCamMasterTransformerBlock(WanTransformerBlock):
    """A Wan block (self-attn -> cross-attn -> FFN) with the MVS step after self-attention.

    The MVS parameters:
        cam_encoder: Linear(12 -> D), camera pose of each (view, frame) added to the normalised tokens of that frame.
        mvs_attn: attention with the structure of ``attn1`` (q/k/v/out with bias, RMSNorm on q and k, 3-axis RoPE).
        projector: Linear(D -> D) on the attention output.
        scale_shift_table_mvs: (1, 3, D) shift/scale/gate offsets added to the block's first three modulation rows.
    The MVS LayerNorm has no parameters.
    """

    def __init__(
        self,
        dim: int,
        ffn_dim: int,
        num_heads: int,
        qk_norm: str = "rms_norm_across_heads",
        cross_attn_norm: bool = False,
        eps: float = 1e-6,
        added_kv_proj_dim: int | None = None,
    ):
        super().__init__(dim, ffn_dim, num_heads, qk_norm, cross_attn_norm, eps, added_kv_proj_dim)
        self.norm_mvs = FP32LayerNorm(dim, eps, elementwise_affine=False)
        self.cam_encoder = nn.Linear(CAMERA_EMBEDDING_DIM, dim)
        self.mvs_attn = WanAttention(
            dim=dim,
            heads=num_heads,
            dim_head=dim // num_heads,
            eps=eps,
            cross_attention_dim_head=None,
            processor=WanAttnProcessor(),
        )
        self.projector = nn.Linear(dim, dim)
        self.scale_shift_table_mvs = nn.Parameter(torch.randn(1, 3, dim) / dim**0.5)

    @torch.no_grad()
    def initialize_mvs_from_base(self) -> None:
        """SynCamMaster's initialisation for training from a plain Wan block: the untrained block equals the base.

        ``mvs_attn`` starts as a copy of the block's self-attention and the MVS modulation as a copy of the
        self-attention modulation rows, so the new path starts from what the block already knows; ``cam_encoder``
        and ``projector`` start at zero, so the MVS residual is exactly zero until training moves them.
        """
        self.mvs_attn.load_state_dict(self.attn1.state_dict())
        self.scale_shift_table_mvs.copy_(self.scale_shift_table[:, 0:3])
        for linear in (self.cam_encoder, self.projector):
            nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)

    def mvs(
        self,
        hidden_states: torch.Tensor,
        temb: torch.Tensor,
        camera_embedding: torch.Tensor,
        rotary_emb_mvs: tuple[torch.Tensor, torch.Tensor],
        num_views: int,
        num_frames: int,
        view_split: ViewSplit | None = None,
    ) -> torch.Tensor:
        """Multi-view synchronization: attention across the views of each prompt at each time step.

        Args:
            hidden_states: (B*V, F*H*W, D) tokens, view-major.
            temb: (B*V, 6, D) the block's timestep modulation (only rows 0..2 are used).
            camera_embedding: (B*V, F, 12) relative camera pose of each view at each latent frame.
            rotary_emb_mvs: cos and sin, each (1, V_all*H*W, 1, head_dim), RoPE over positions (view, h, w).
            num_views: V, the views held here.
            num_frames: F.
            view_split: this process's views when a sample's views are split over processes (``V_all`` views in
                all); the keys and values of the other views come from the processes that hold them.
        Returns:
            (B*V, F*H*W, D) hidden states with the MVS residual added.
        """
        batch_views, seq_len, dim = hidden_states.shape
        batch_size = batch_views // num_views
        tokens_per_frame = seq_len // num_frames  # H*W

        shift, scale, gate = (self.scale_shift_table_mvs + temb[:, 0:3].float()).chunk(3, dim=1)  # 3 x (B*V, 1, D)
        norm_hidden_states = self.norm_mvs(hidden_states.float()) * (1 + scale) + shift  # (B*V, F*H*W, D)

        # The camera enters in the compute dtype of the hidden states: the encoder's stored weight dtype may differ
        # (layerwise casting stores it in float8 and casts it to the compute dtype for each forward).
        camera = self.cam_encoder(camera_embedding.to(hidden_states.dtype))  # (B*V, F, D)
        norm_hidden_states = norm_hidden_states.unflatten(1, (num_frames, tokens_per_frame))  # (B*V, F, H*W, D)
        norm_hidden_states = (norm_hidden_states + camera.unsqueeze(2)).type_as(hidden_states)

        # Regroup to the tokens of one time step across all views of one prompt.
        mvs_input = norm_hidden_states.view(batch_size, num_views, num_frames, tokens_per_frame, dim)
        mvs_input = mvs_input.transpose(1, 2).reshape(batch_size * num_frames, num_views * tokens_per_frame, dim)
        if view_split is None:
            mvs_output = self.mvs_attn(mvs_input, None, None, rotary_emb_mvs)  # (B*F, V*H*W, D)
        else:
            mvs_output = split_view_attention(self.mvs_attn, mvs_input, rotary_emb_mvs, view_split, tokens_per_frame)
        mvs_output = self.projector(mvs_output)  # (B*F, V*H*W, D)

        # And back to (B*V, F*H*W, D), view-major.
        mvs_output = mvs_output.view(batch_size, num_frames, num_views, tokens_per_frame, dim)
        mvs_output = mvs_output.transpose(1, 2).reshape(batch_views, seq_len, dim)
        return (hidden_states.float() + mvs_output.float() * gate).type_as(hidden_states)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        temb: torch.Tensor,
        rotary_emb: tuple[torch.Tensor, torch.Tensor],
        camera_embedding: torch.Tensor | None = None,
        rotary_emb_mvs: tuple[torch.Tensor, torch.Tensor] | None = None,
        num_views: int = 1,
        num_frames: int = 1,
        view_split: ViewSplit | None = None,
    ) -> torch.Tensor:
        """One block: self-attention -> MVS -> cross-attention -> FFN.

        Args:
            hidden_states: (B*V, F*H*W, D).
            encoder_hidden_states: (B*V, L, D) projected text tokens.
            temb: (B*V, 6, D) timestep modulation.
            rotary_emb: cos and sin, each (1, F*H*W, 1, head_dim), RoPE over (frame, h, w).
            camera_embedding: (B*V, F, 12); ``None`` bypasses the MVS step (the plain Wan block).
            rotary_emb_mvs: cos and sin, each (1, V_all*H*W, 1, head_dim).
            num_views: V, the views held here.
            num_frames: F.
            view_split: see ``mvs``; ``None`` when all V_all = V views are here.
        Returns:
            (B*V, F*H*W, D).
        """
        shift_msa, scale_msa, gate_msa, c_shift_msa, c_scale_msa, c_gate_msa = (
            self.scale_shift_table + temb.float()
        ).chunk(6, dim=1)  # 6 x (B*V, 1, D)

        # 1. Self-attention (within each view's video)
        norm_hidden_states = (self.norm1(hidden_states.float()) * (1 + scale_msa) + shift_msa).type_as(hidden_states)
        attn_output = self.attn1(norm_hidden_states, None, None, rotary_emb)
        hidden_states = (hidden_states.float() + attn_output * gate_msa).type_as(hidden_states)

        # 2. Multi-view synchronization (across views, per time step)
        if camera_embedding is not None:
            hidden_states = self.mvs(
                hidden_states, temb, camera_embedding, rotary_emb_mvs, num_views, num_frames, view_split
            )

        # 3. Cross-attention to the text
        norm_hidden_states = self.norm2(hidden_states.float()).type_as(hidden_states)
        attn_output = self.attn2(norm_hidden_states, encoder_hidden_states, None, None)
        hidden_states = hidden_states + attn_output

        # 4. Feed-forward
        norm_hidden_states = (self.norm3(hidden_states.float()) * (1 + c_scale_msa) + c_shift_msa).type_as(
            hidden_states
        )
        ff_output = self.ffn(norm_hidden_states)
        return (hidden_states.float() + ff_output.float() * c_gate_msa).type_as(hidden_states)


def self_attention_projections(
    attn: WanAttention, hidden_states: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Query, key and value of a self-attention layer, each (..., D): its fused q/k/v linear after
    ``fuse_projections()``, else the three linears, as ``WanAttnProcessor`` computes them."""
    if attn.fused_projections:
        query, key, value = attn.to_qkv(hidden_states).chunk(3, dim=-1)
        return query, key, value
    return attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)


def split_view_attention(
    attn: WanAttention,
    hidden_states: torch.Tensor,
    rotary_emb: tuple[torch.Tensor, torch.Tensor],
    view_split: ViewSplit,
    tokens_per_view: int,
) -> torch.Tensor:
    """The MVS attention of this process's views over the keys and values of all views (gathered from the others).

    The computation of ``WanAttnProcessor`` for self-attention (q/k/v, RMSNorm on q and k, RoPE, attention, output
    projection), with the keys and values of the other processes' views gathered after their RoPE, so each process
    projects only its own tokens.

    Args:
        attn: the block's ``mvs_attn``.
        hidden_states: (B*F, V*H*W, D) tokens of the local views (``view_split.start`` to ``stop - 1``).
        rotary_emb: cos and sin, each (1, V_all*H*W, 1, head_dim): RoPE over all views' positions (view, h, w).
        tokens_per_view: H*W.
    Returns:
        (B*F, V*H*W, D), the attention output of the local views' tokens.
    """
    query, key, value = self_attention_projections(attn, hidden_states)  # 3 x (B*F, V*H*W, D)
    query, key = attn.norm_q(query), attn.norm_k(key)
    query, key, value = (t.unflatten(2, (attn.heads, -1)) for t in (query, key, value))  # (B*F, V*H*W, heads, hd)
    local = slice(view_split.start * tokens_per_view, view_split.stop * tokens_per_view)
    cos, sin = (table[0, local, 0] for table in rotary_emb)  # (V*H*W, hd): the local views' positions
    query = apply_rotary_emb(query, (cos, sin), use_real=True, use_real_unbind_dim=-1, sequence_dim=1)
    key = apply_rotary_emb(key, (cos, sin), use_real=True, use_real_unbind_dim=-1, sequence_dim=1)
    key = view_split.gather_views(key, tokens_per_view)  # (B*F, V_all*H*W, heads, hd)
    value = view_split.gather_views(value, tokens_per_view)
    # The backend the user set on this attention (``set_attention_backend``), which diffusers keeps on its processor.
    hidden_states = dispatch_attention_fn(
        query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, backend=attn.processor._attention_backend
    )  # (B*F, V*H*W, heads, hd)
    hidden_states = hidden_states.flatten(2, 3).type_as(query)
    return attn.to_out[1](attn.to_out[0](hidden_states))


# diffusers' cache hooks (First Block Cache, MagCache, ...) look a block's class up in this registry to learn which
# argument holds the hidden states and which output returns them; the MVS arguments after ``rotary_emb`` are passed
# through untouched. The block returns the hidden states alone, as Wan's does. diffusers registers its own blocks the
# same way and exports the registry from no public module, so it is imported from ``diffusers.hooks._helpers``.
TransformerBlockRegistry.register(
    model_class=SynCamMasterTransformerBlock,
    metadata=TransformerBlockMetadata(return_hidden_states_index=0, return_encoder_hidden_states_index=None),
)


class DenoiseStepHook(ModelHook):
    """Opens diffusers' cache context for each forward of the transformer and records the forward's timestep.

    diffusers' cache hooks keep their state per named context, and some read the current timestep. The pipeline
    batches the unconditional and conditional passes into one forward, so one context covers both. Stateful, so that
    the pipeline's reset after each call (``_reset_stateful_cache``) also clears the recorded timestep.
    """

    _is_stateful = True

    def __init__(self) -> None:
        super().__init__()
        self.timestep: float = float("inf")

    def new_forward(self, module: nn.Module, *args, **kwargs):
        timestep = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        # Views may carry different timesteps (a clean reference view): the noisiest one says where sampling is.
        self.timestep = float(torch.as_tensor(timestep).max())
        with module.cache_context(DENOISE_CACHE_CONTEXT, timestep=self.timestep):
            return self.fn_ref.original_forward(*args, **kwargs)

    def reset_state(self, module: nn.Module) -> nn.Module:
        self.timestep = float("inf")
        return module


class SynCamMasterTransformer3DModel(WanTransformer3DModel):
    """Wan2.1 text-to-video transformer with SynCamMaster's multi-view synchronization in every block.

    The configuration is Wan's (see ``WanTransformer3DModel``); the numbers of views, frames, height and width come
    from the inputs of each call. Released sizes: 1.3B (12 heads, 30 layers, FFN 8960) and 14B (40 heads, 40 layers,
    FFN 13824), both with 128-dimensional heads, text dim 4096 and frequency dim 256.
    """

    _no_split_modules = ["SynCamMasterTransformerBlock"]
    _repeated_blocks = ["SynCamMasterTransformerBlock"]
    _keep_in_fp32_modules = [*WanTransformer3DModel._keep_in_fp32_modules, "scale_shift_table_mvs", "norm_mvs"]
    _cp_plan = None  # context parallelism would split the sequence that MVS regroups; not supported

    @register_to_config
    def __init__(
        self,
        patch_size: tuple[int, ...] = (1, 2, 2),
        num_attention_heads: int = 40,
        attention_head_dim: int = WAN_ATTENTION_HEAD_DIM,
        in_channels: int = 16,
        out_channels: int = 16,
        text_dim: int = 4096,
        freq_dim: int = 256,
        ffn_dim: int = 13824,
        num_layers: int = 40,
        cross_attn_norm: bool = True,
        qk_norm: str | None = "rms_norm_across_heads",
        eps: float = 1e-6,
        image_dim: int | None = None,
        added_kv_proj_dim: int | None = None,
        rope_max_seq_len: int = 1024,
        pos_embed_seq_len: int | None = None,
    ) -> None:
        if image_dim is not None or added_kv_proj_dim is not None:
            raise ValueError("SynCamMaster is a text-to-video model: image conditioning (image_dim) is not supported.")
        super().__init__(
            patch_size=patch_size,
            num_attention_heads=num_attention_heads,
            attention_head_dim=attention_head_dim,
            in_channels=in_channels,
            out_channels=out_channels,
            text_dim=text_dim,
            freq_dim=freq_dim,
            ffn_dim=ffn_dim,
            num_layers=num_layers,
            cross_attn_norm=cross_attn_norm,
            qk_norm=qk_norm,
            eps=eps,
            rope_max_seq_len=rope_max_seq_len,
        )
        inner_dim = num_attention_heads * attention_head_dim
        self.blocks = nn.ModuleList(
            [
                SynCamMasterTransformerBlock(inner_dim, ffn_dim, num_attention_heads, qk_norm, cross_attn_norm, eps)
                for _ in range(num_layers)
            ]
        )

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_wan(cls, base: WanTransformer3DModel) -> SynCamMasterTransformer3DModel:
        """Builds the model from a plain Wan transformer, with the MVS module initialised as SynCamMaster trains it.

        The result computes exactly what ``base`` computes until the MVS parameters are trained.
        """
        config = {k: v for k, v in base.config.items() if not k.startswith("_")}
        model = cls(**config)
        missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
        not_mvs = [k for k in missing if not _is_mvs_key(k)]
        if not_mvs or unexpected:
            raise CheckpointError(f"base Wan model does not fit: missing {not_mvs[:5]}, unexpected {unexpected[:5]}")
        model.initialize_mvs_from_base()
        return model if base.dtype == model.dtype else model.to(base.dtype)

    def initialize_mvs_from_base(self) -> None:
        """Re-initialises every block's MVS module from the block itself (see the block's method)."""
        for block in self.blocks:
            block.initialize_mvs_from_base()

    @classmethod
    def from_official_checkpoint(
        cls,
        checkpoint: str | os.PathLike | dict[str, torch.Tensor],
        torch_dtype: torch.dtype | None = None,
        revision: str | None = None,
        **config: Any,
    ) -> SynCamMasterTransformer3DModel:
        """Loads a released SynCamMaster checkpoint (e.g. ``step20000.ckpt``: the whole DiT state dict, Wan key names).

        ``checkpoint``: a state dict, a file, or a Hugging Face repo id fetched through ``syncammaster.hub``
        (``KwaiVGI/SynCamMaster-Wan2.1`` means its ``step20000.ckpt``; ``OWNER/REPO/FILE`` any file) at ``revision``.

        The config is inferred from tensor shapes (heads = width // 128 unless ``num_attention_heads`` is given);
        any keyword overrides an inferred value. Raises ``CheckpointError`` naming missing and unexpected keys.
        A file is memory-mapped and the model is built on the meta device, then given the file's tensors: loading
        takes about the checkpoint's bytes of memory (plus a converted copy where ``torch_dtype`` differs).
        """
        if isinstance(checkpoint, dict):
            state_dict = dict(checkpoint)
        else:
            state_dict = _load_state_dict_file(resolve_file(checkpoint, revision))
        state_dict = _unwrap_state_dict(state_dict)
        inferred = infer_official_config(state_dict, num_attention_heads=config.pop("num_attention_heads", None))
        inferred.update(config)

        converted = convert_wan_transformer_to_diffusers(dict(state_dict))
        with torch.device("meta"):
            model = cls(**inferred)
        expected = set(model.state_dict().keys())
        missing = sorted(expected - converted.keys())
        unexpected = sorted(converted.keys() - expected)
        if missing or unexpected:
            raise CheckpointError(
                "checkpoint is not a SynCamMaster/Wan2.1 T2V state dict: "
                f"{len(missing)} missing keys {_official_names(missing)}, "
                f"{len(unexpected)} unexpected keys {_official_names(unexpected)}"
            )
        expected_shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
        for name, tensor in converted.items():
            if expected_shapes[name] != tuple(tensor.shape):
                raise CheckpointError(
                    f"checkpoint tensor {name} has shape {tuple(tensor.shape)}, the inferred config expects "
                    f"{expected_shapes[name]}; check the config overrides"
                )
        if torch_dtype is not None:
            converted = {k: v.to(torch_dtype) for k, v in converted.items()}
        model.load_state_dict(converted, strict=True, assign=True)
        # Non-persistent RoPE tables were created on the meta device: rebuild them.
        model.rope = type(model.rope)(
            inferred.get("attention_head_dim", WAN_ATTENTION_HEAD_DIM),
            tuple(model.config.patch_size),
            model.config.rope_max_seq_len,
        )
        return model.eval()

    # ------------------------------------------------------------------ training helpers

    def mvs_parameters(self) -> list[nn.Parameter]:
        """The parameters SynCamMaster trains (every block's MVS module); the rest of the model stays frozen."""
        return [p for block in self.blocks for name in MVS_MODULE_NAMES for p in _parameters_of(block, name)]

    def named_mvs_parameters(self) -> list[tuple[str, nn.Parameter]]:
        mvs_ids = {id(p) for p in self.mvs_parameters()}
        return [(name, p) for name, p in self.named_parameters() if id(p) in mvs_ids]

    def freeze_base(self) -> None:
        """Freezes every parameter except the MVS module's."""
        self.requires_grad_(False)
        for p in self.mvs_parameters():
            p.requires_grad_(True)

    # ------------------------------------------------------------------ step-skipping caches

    def enable_cache(self, config) -> None:
        """diffusers' ``enable_cache`` (any of its cache configs), plus the hook that gives the caches their context.

        The hook opens one cache context per forward (the pipeline batches the unconditional and conditional passes)
        and records the forward's timestep as ``current_timestep``, for configs that take a
        ``current_timestep_callback`` (``lambda: transformer.current_timestep``).
        """
        super().enable_cache(config)
        HookRegistry.check_if_exists_or_initialize(self).register_hook(DenoiseStepHook(), DENOISE_STEP_HOOK)

    def disable_cache(self) -> None:
        # The step hook wraps the cache hooks, so it goes first: a hook removed from under another one would stay
        # in the outer hook's chain.
        registry = HookRegistry.check_if_exists_or_initialize(self)
        if registry.get_hook(DENOISE_STEP_HOOK) is not None:
            registry.remove_hook(DENOISE_STEP_HOOK, recurse=False)
        super().disable_cache()

    @property
    def current_timestep(self) -> float | None:
        """The (largest) timestep of the forward running now, while a cache is enabled; ``None`` otherwise."""
        hook = HookRegistry.check_if_exists_or_initialize(self).get_hook(DENOISE_STEP_HOOK)
        return None if hook is None else hook.timestep

    # ------------------------------------------------------------------ forward

    @apply_lora_scale("attention_kwargs")
    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor,
        camera_embedding: torch.Tensor | None = None,
        num_views: int = 1,
        return_dict: bool = True,
        attention_kwargs: dict[str, Any] | None = None,
        view_split: ViewSplit | None = None,
    ) -> Transformer2DModelOutput | tuple[torch.Tensor]:
        """Predicts the flow-matching velocity for B prompts x V views.

        Args:
            hidden_states: (B*V, C, F, H, W) latents, view-major (index = b * V + v).
            timestep: a scalar, (1,) or (B*V,) timesteps in [0, 1000].
            encoder_hidden_states: (B*V, L, text_dim) text embeddings (the same prompt repeated over its views).
            camera_embedding: (B*V, F, 12) relative camera poses (``CameraRig.embedding``); ``None`` bypasses the MVS
                module, so the views are generated independently (the paper's ablation).
            num_views: V.
            return_dict: return a ``Transformer2DModelOutput`` instead of a tuple.
            attention_kwargs: as in diffusers' Wan transformer: ``{"scale": s}`` scales the loaded LoRA layers for
                this forward (peft backend).
            view_split: when one sample's views are split over processes (``syncammaster.parallel``): which of
                the ``view_split.num_views`` views these V are; the multi-view attention gathers the others' keys
                and values from ``view_split.group``. Inference only.
        Returns:
            The prediction, shaped like ``hidden_states``.
        """
        batch_views, num_channels, num_frames, height, width = hidden_states.shape
        p_t, p_h, p_w = self.config.patch_size
        post_patch_num_frames = num_frames // p_t
        post_patch_height = height // p_h
        post_patch_width = width // p_w
        self._check_forward_inputs(hidden_states, encoder_hidden_states, camera_embedding, num_views)

        timestep = torch.as_tensor(timestep, device=hidden_states.device)
        if timestep.ndim == 0 or timestep.numel() == 1:
            timestep = timestep.reshape(1).expand(batch_views)
        elif timestep.shape != (batch_views,):
            raise ValueError(f"timestep must be a scalar, (1,) or (B*V,)=({batch_views},), got {tuple(timestep.shape)}")

        rotary_emb = self.rope(hidden_states)  # 2 x (1, F*H*W, 1, head_dim)
        # RoPE over (view, h, w): the rope module reads only the shape, so a meta tensor with V in the frame slot.
        all_views = num_views if view_split is None else view_split.num_views
        if view_split is not None and view_split.stop - view_split.start != num_views:
            raise ValueError(f"view_split holds {view_split.stop - view_split.start} views, num_views is {num_views}")
        view_grid = torch.empty((1, 1, all_views * p_t, height, width), device="meta")
        rotary_emb_mvs = self.rope(view_grid) if camera_embedding is not None else None  # 2 x (1, V*H*W, 1, hd)

        hidden_states = self.patch_embedding(hidden_states)  # (B*V, D, F, H, W) in post-patch sizes
        hidden_states = hidden_states.flatten(2).transpose(1, 2).contiguous()  # (B*V, F*H*W, D)

        temb, timestep_proj, encoder_hidden_states, _ = self.condition_embedder(timestep, encoder_hidden_states)
        timestep_proj = timestep_proj.unflatten(1, (6, -1))  # (B*V, 6, D)

        block_kwargs = {
            "camera_embedding": camera_embedding,
            "rotary_emb_mvs": rotary_emb_mvs,
            "num_views": num_views,
            "num_frames": post_patch_num_frames,
            "view_split": view_split,
        }
        for block in self.blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                hidden_states = self._gradient_checkpointing_func(
                    block,
                    hidden_states,
                    encoder_hidden_states,
                    timestep_proj,
                    rotary_emb,
                    camera_embedding,
                    rotary_emb_mvs,
                    num_views,
                    post_patch_num_frames,
                    view_split,
                )
            else:
                hidden_states = block(hidden_states, encoder_hidden_states, timestep_proj, rotary_emb, **block_kwargs)

        # Output norm, projection and unpatchify (Wan's head).
        shift, scale = (self.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)  # (B*V, 1, D)
        hidden_states = (self.norm_out(hidden_states.float()) * (1 + scale) + shift).type_as(hidden_states)
        hidden_states = self.proj_out(hidden_states)  # (B*V, F*H*W, p_t*p_h*p_w*C)
        hidden_states = hidden_states.reshape(
            batch_views, post_patch_num_frames, post_patch_height, post_patch_width, p_t, p_h, p_w, -1
        )
        hidden_states = hidden_states.permute(0, 7, 1, 4, 2, 5, 3, 6)
        output = hidden_states.flatten(6, 7).flatten(4, 5).flatten(2, 3)  # (B*V, C, F, H, W)

        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)

    def _check_forward_inputs(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        camera_embedding: torch.Tensor | None,
        num_views: int,
    ) -> None:
        batch_views, num_channels, num_frames, height, width = hidden_states.shape
        p_t, p_h, p_w = self.config.patch_size
        if num_views < 1 or batch_views % num_views != 0:
            raise ValueError(f"hidden_states batch {batch_views} is not a multiple of num_views={num_views}")
        if num_channels != self.config.in_channels:
            raise ValueError(f"hidden_states has {num_channels} channels, the model expects {self.config.in_channels}")
        if num_frames % p_t or height % p_h or width % p_w:
            raise ValueError(
                f"latent size (F, H, W)=({num_frames}, {height}, {width}) is not divisible by the patch size "
                f"{tuple(self.config.patch_size)}"
            )
        if encoder_hidden_states.shape[0] != batch_views:
            raise ValueError(
                f"encoder_hidden_states batch {encoder_hidden_states.shape[0]} != hidden_states batch {batch_views} "
                "(repeat each prompt's embedding over its views)"
            )
        if camera_embedding is not None:
            expected = (batch_views, num_frames // p_t, CAMERA_EMBEDDING_DIM)
            if tuple(camera_embedding.shape) != expected:
                raise ValueError(
                    f"camera_embedding has shape {tuple(camera_embedding.shape)}, expected (B*V, F, 12)={expected}"
                )


# ---------------------------------------------------------------------- released checkpoint format


def _is_mvs_key(key: str) -> bool:
    return any(f".{name}" in key for name in MVS_MODULE_NAMES) or ".norm_mvs" in key


def _parameters_of(block: nn.Module, name: str) -> list[nn.Parameter]:
    attribute = getattr(block, name)
    return [attribute] if isinstance(attribute, nn.Parameter) else list(attribute.parameters())


def _load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    try:
        # Memory-mapped: tensors are read from the file as they are used, and loading with ``assign=True`` keeps
        # them as the model's parameters, so the checkpoint is never held twice (nor copied to float32).
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # torch raises several types for a file that is not a plain tensor checkpoint
        reason = " ".join(str(error).split()).split(". ")[0] or type(error).__name__  # torch's first sentence
        raise CheckpointError(f"cannot read {path} as a tensor checkpoint (weights_only=True): {reason}") from error


def _unwrap_state_dict(state_dict: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Accepts a bare state dict, or one nested under "state_dict" / "module" (Lightning and DeepSpeed files)."""
    if not isinstance(state_dict, dict) or not all(isinstance(key, str) for key in state_dict):
        raise CheckpointError(f"checkpoint holds a {type(state_dict).__name__}, not a state dict of named tensors")
    for key in ("state_dict", "module"):
        if key in state_dict and isinstance(state_dict[key], dict):
            state_dict = state_dict[key]
    prefixes = ("model.diffusion_model.", "pipe.dit.", "dit.", "model.")
    for prefix in prefixes:
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
    non_tensors = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if non_tensors:
        raise CheckpointError(f"checkpoint holds non-tensor entries {non_tensors[:5]}; expected a DiT state dict")
    return state_dict


def infer_official_config(
    state_dict: dict[str, torch.Tensor], num_attention_heads: int | None = None
) -> dict[str, Any]:
    """Infers the transformer config from the shapes of a released-format (original Wan key names) state dict."""
    required = ("patch_embedding.weight", "text_embedding.0.weight", "time_embedding.0.weight", "head.head.weight")
    absent = [k for k in required if k not in state_dict]
    if absent:
        raise CheckpointError(f"checkpoint lacks {absent}: not a Wan2.1/SynCamMaster DiT state dict in released format")
    patch_weight = state_dict["patch_embedding.weight"]  # (D, C_in, p_t, p_h, p_w)
    dim, in_channels = patch_weight.shape[:2]
    patch_size = tuple(int(s) for s in patch_weight.shape[2:])
    block_ids = {int(k.split(".")[1]) for k in state_dict if k.startswith("blocks.")}
    if not block_ids or "blocks.0.ffn.0.weight" not in state_dict:
        raise CheckpointError("checkpoint has no transformer blocks (blocks.0.ffn.0.weight missing)")
    if num_attention_heads is None:
        if dim % WAN_ATTENTION_HEAD_DIM:
            raise CheckpointError(f"model width {dim} is not a multiple of 128; pass num_attention_heads explicitly")
        num_attention_heads = dim // WAN_ATTENTION_HEAD_DIM
    if dim % num_attention_heads:
        raise CheckpointError(f"model width {dim} is not divisible by num_attention_heads={num_attention_heads}")
    return {
        "patch_size": patch_size,
        "num_attention_heads": num_attention_heads,
        "attention_head_dim": dim // num_attention_heads,
        "in_channels": int(in_channels),
        "out_channels": int(state_dict["head.head.weight"].shape[0] // math.prod(patch_size)),
        "text_dim": int(state_dict["text_embedding.0.weight"].shape[1]),
        "freq_dim": int(state_dict["time_embedding.0.weight"].shape[1]),
        "ffn_dim": int(state_dict["blocks.0.ffn.0.weight"].shape[0]),
        "num_layers": max(block_ids) + 1,
        "cross_attn_norm": "blocks.0.norm3.weight" in state_dict,
    }


_DIFFUSERS_TO_OFFICIAL = (
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("attn1", "self_attn"),
    ("attn2", "cross_attn"),
    (".to_out.0.", ".o."),
    (".to_q.", ".q."),
    (".to_k.", ".k."),
    (".to_v.", ".v."),
    ("ffn.net.0.proj", "ffn.0"),
    ("ffn.net.2", "ffn.2"),
    ("proj_out", "head.head"),
)


def to_official_key(key: str) -> str:
    """Maps one of this model's parameter names to the released checkpoint's name (for messages and export)."""
    if key == "scale_shift_table":
        return "head.modulation"
    for ours, official in _DIFFUSERS_TO_OFFICIAL:
        key = key.replace(ours, official)
    key = key.replace("scale_shift_table", "modulation")
    # diffusers swaps Wan's norm2 (before FFN) and norm3 (before cross-attention).
    return key.replace(".norm2.", ".norm__swap.").replace(".norm3.", ".norm2.").replace(".norm__swap.", ".norm3.")


def to_official_state_dict(model: SynCamMasterTransformer3DModel) -> dict[str, torch.Tensor]:
    """The model's weights under the released checkpoint's key names (the inverse of ``from_official_checkpoint``)."""
    return {to_official_key(k): v.detach().clone() for k, v in model.state_dict().items()}


def _official_names(keys: list[str], limit: int = 6) -> str:
    shown = [to_official_key(k) for k in keys[:limit]]
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return f"{shown}{more}"
