"""SynCamMasterPipeline: a text prompt and a rig of V cameras -> V synchronized videos of one scene.

Wan2.1's text-to-video pipeline (diffusers' ``WanPipeline``: UMT5 prompt encoding, ``AutoencoderKLWan``, flow
matching) with the SynCamMaster transformer, whose multi-view synchronization module makes the V videos agree.
Sampling defaults reproduce the released SynCamMaster inference: Euler flow matching, 50 steps, sigma shift 5,
classifier-free guidance 5.0, Wan's negative prompt, 512 text tokens.

One file, as diffusers keeps a pipeline: ``__call__`` reads top to bottom in numbered steps, with the checks, the
loaders and the reference-video handling it calls beside it.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import get_module_execution_device, randn_tensor
from diffusers.video_processor import VideoProcessor
from safetensors import SafetensorError

from .camera_conventions import SYNCAMVIDEO_FOCAL_PER_SIDE, Intrinsics
from .cameras import CameraRig
from .encoding import decode_latents, encode_videos, resize_and_crop
from .hub import WAN_FILES, WAN_FILES_WITHOUT_TRANSFORMER, resolve_file, resolve_folder
from .jsonfile import read_json
from .model_files import (
    RELEASE_HEIGHT,
    RELEASE_NUM_FRAMES,
    RELEASE_WIDTH,
    SAVE_AGAIN,
    ModelFilesError,
    check_checkpoint_file,
    check_model_folder,
    check_wan_folder,
    check_weights_file,
    first_sentence,
)
from .models import SynCamMasterTransformer3DModel
from .parallel import split_sample
from .video import DEFAULT_FPS, VideoTooShortError, fitting_frame_counts, read_clip

# Wan2.1's default negative prompt (the one the released SynCamMaster inference uses).
WAN_NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
    "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
    "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"
)
# Wan pads every prompt to 512 UMT5 tokens; the padded tokens still pass through the text projection, so the
# sequence length changes the result and must match what the model was trained with.
T5_CONTEXT_TOKEN_NUMBER = 512
# Wan2.1's VAE strides (frames 4k + 1 -> k + 1 latent frames; 8x8 pixels per latent), used without a VAE.
WAN_VAE_TEMPORAL_STRIDE, WAN_VAE_SPATIAL_STRIDE = 4, 8
# Classifier-free guidance of the released inference (Wan2.1's text-to-video default).
RELEASE_GUIDANCE_SCALE = 5.0
# Flow-matching sigma shift of Wan2.1 / SynCamMaster sampling and training.
SAMPLE_SHIFT = 5.0
# How the reference view of novel-view synthesis enters the denoising (see ``SynCamMasterPipeline.__call__``).
REFERENCE_MODES = ("clean", "renoise")


def use_channels_last_3d(module: torch.nn.Module) -> None:
    """Stores the weight of every 3-D convolution in ``module`` channels-last (``torch.channels_last_3d``).

    oneDNN runs a 3-D convolution with channels-last weights faster on a CPU (benchmarks/RESULTS.md, "The 1.3B size
    on a CPU", its last paragraph); the results agree to float rounding. Other layers keep their layout.
    """
    for layer in module.modules():
        if isinstance(layer, torch.nn.Conv3d) and not layer.weight.is_contiguous(memory_format=torch.channels_last_3d):
            layer.to(memory_format=torch.channels_last_3d)


@dataclass
class SynCamMasterPipelineOutput(BaseOutput):
    """Output of ``SynCamMasterPipeline``.

    Args:
        frames: one video per (sample, view), where the S samples are the ``num_videos_per_prompt`` scenes of each
            of the B prompts, prompt-major (S = B * num_videos_per_prompt). ``np``: float array (S, V, T, H, W, 3) in
            [0, 1]; ``pt``: tensor (S, V, T, 3, H, W) in [0, 1]; ``pil``: nested lists [sample][view][frame] of PIL
            images; ``latent``: the latents (S*V, C, F, h, w), view-major. diffusers' video pipelines name their
            output ``frames`` too, with one video per sample where this has V.
    """

    frames: Any

    @property
    def videos(self) -> Any:
        """The same as ``frames``."""
        return self.frames


class SynCamMasterPipeline(WanPipeline):
    """Text + camera rig -> one video per camera, synchronized and 3D-consistent.

    Components: ``tokenizer`` and ``text_encoder`` (UMT5), ``transformer`` (``SynCamMasterTransformer3DModel``),
    ``vae`` (``AutoencoderKLWan``), ``scheduler`` (flow matching; ``FlowMatchEulerDiscreteScheduler`` with shift 5
    reproduces the release). ``focal_length_per_side`` records the intrinsics of the model's training data:
    fx = fy = focal_length_per_side * max(W, H) pixels, principal point at the image centre;
    ``max_sequence_length`` the number of text tokens it was trained with (Wan: 512); ``negative_prompt`` the
    negative caption guidance uses by default (Wan's for the released model; the empty caption for models trained
    with caption dropout, which is what their unconditional branch learned); ``default_guidance_scale`` the
    classifier-free guidance a call uses when it names none (5.0, the release's); ``default_fps`` the frame rate of its
    training videos (15, SynCamVideo's): the rate its videos represent, and the rate a reference video file is sampled
    at.

    Load a complete folder with ``SynCamMasterPipeline.from_pretrained(folder)``, or a Wan2.1-T2V diffusers folder
    plus a released checkpoint with ``SynCamMasterPipeline.from_wan(wan_folder, "step20000.ckpt")``.

    A component may be ``None`` where a use does not need it, as in diffusers' pipelines: without ``vae`` a call
    returns latents (``output_type="latent"``); without ``tokenizer`` and ``text_encoder`` it takes
    ``prompt_embeds`` (and ``negative_prompt_embeds`` under guidance); with only those two, ``encode_prompt`` alone.
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _optional_components = []
    # What ``callback_on_step_end`` may read and replace (``callback_on_step_end_tensor_inputs``), as in WanPipeline.
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]

    def __init__(
        self,
        tokenizer,
        text_encoder,
        transformer: SynCamMasterTransformer3DModel | None,
        vae: AutoencoderKLWan | None,
        scheduler: FlowMatchEulerDiscreteScheduler | None,
        focal_length_per_side: float = SYNCAMVIDEO_FOCAL_PER_SIDE,
        max_sequence_length: int = T5_CONTEXT_TOKEN_NUMBER,
        negative_prompt: str = WAN_NEGATIVE_PROMPT,
        default_height: int = RELEASE_HEIGHT,
        default_width: int = RELEASE_WIDTH,
        default_num_frames: int = RELEASE_NUM_FRAMES,
        default_guidance_scale: float = RELEASE_GUIDANCE_SCALE,
        default_fps: float = DEFAULT_FPS,
    ):
        DiffusionPipeline.__init__(self)
        self.register_modules(
            tokenizer=tokenizer, text_encoder=text_encoder, transformer=transformer, vae=vae, scheduler=scheduler
        )
        if not isinstance(negative_prompt, str):
            raise ValueError(f"the default `negative_prompt` must be a string, got {negative_prompt!r}")
        if not math.isfinite(float(default_guidance_scale)):
            raise ValueError(f"`default_guidance_scale` must be a finite number, got {default_guidance_scale!r}")
        if not (math.isfinite(float(default_fps)) and default_fps > 0):
            raise ValueError(f"`default_fps` must be a positive frame rate, got {default_fps!r}")
        self.register_to_config(
            focal_length_per_side=float(focal_length_per_side),
            max_sequence_length=int(max_sequence_length),
            negative_prompt=negative_prompt,
            # The video size the model was trained at, used when a call names none (the release's for its weights).
            default_height=int(default_height),
            default_width=int(default_width),
            default_num_frames=int(default_num_frames),
            default_guidance_scale=float(default_guidance_scale),
            default_fps=float(default_fps),
        )
        if vae is not None:
            self.vae_scale_factor_temporal = vae.config.scale_factor_temporal
            self.vae_scale_factor_spatial = vae.config.scale_factor_spatial
        else:  # a pipeline without a VAE still sizes latents as Wan2.1's VAE would
            self.vae_scale_factor_temporal = WAN_VAE_TEMPORAL_STRIDE
            self.vae_scale_factor_spatial = WAN_VAE_SPATIAL_STRIDE
        self.video_processor = VideoProcessor(vae_scale_factor=self.vae_scale_factor_spatial)

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_wan(
        cls,
        wan_folder: str | os.PathLike,
        checkpoint: str | os.PathLike | None = None,
        torch_dtype: torch.dtype = torch.bfloat16,
        vae_dtype: torch.dtype = torch.float32,
        revision: str | None = None,
    ) -> SynCamMasterPipeline:
        """A Wan2.1-T2V diffusers folder (tokenizer/, text_encoder/, vae/, transformer/) + a released checkpoint.

        Either may be a Hugging Face repo id instead of a path (``syncammaster.hub``): ``wan_folder``
        ``Wan-AI/Wan2.1-T2V-1.3B-Diffusers`` (only the parts needed: no transformer weights with a checkpoint),
        ``checkpoint`` ``KwaiVGI/SynCamMaster-Wan2.1`` (its ``step20000.ckpt``) or ``OWNER/REPO/FILE``; ``revision``
        applies to both. With ``checkpoint=None`` the Wan transformer gets a freshly initialised MVS module (zeros /
        copies), the starting point for training. The scheduler is the released one: Euler flow matching with shift 5.
        """
        from transformers import AutoTokenizer, UMT5EncoderModel

        # Local copies of repo ids, then one-line errors for a missing or broken folder or checkpoint, before anything
        # heavy is read.
        wan_files = WAN_FILES if checkpoint is None else WAN_FILES_WITHOUT_TRANSFORMER
        wan_folder = check_wan_folder(resolve_folder(wan_folder, revision, allow_patterns=wan_files),
                                      with_transformer=checkpoint is None)
        if checkpoint is not None:
            checkpoint = check_checkpoint_file(resolve_file(checkpoint, revision))
            # The Wan folder's transformer config names the head count; otherwise it is inferred (width / 128).
            config_file = wan_folder / "transformer" / "config.json"
            heads = read_json(config_file, SAVE_AGAIN).get("num_attention_heads") if config_file.is_file() else None
            transformer = SynCamMasterTransformer3DModel.from_official_checkpoint(
                checkpoint, torch_dtype=torch_dtype, num_attention_heads=heads
            )
        else:
            from diffusers import WanTransformer3DModel

            base = WanTransformer3DModel.from_pretrained(wan_folder, subfolder="transformer", dtype=torch_dtype)
            transformer = SynCamMasterTransformer3DModel.from_wan(base)
        return cls(
            tokenizer=AutoTokenizer.from_pretrained(wan_folder / "tokenizer"),
            text_encoder=UMT5EncoderModel.from_pretrained(wan_folder / "text_encoder", dtype=torch_dtype),
            transformer=transformer,
            vae=AutoencoderKLWan.from_pretrained(wan_folder, subfolder="vae", dtype=vae_dtype),
            scheduler=FlowMatchEulerDiscreteScheduler(shift=SAMPLE_SHIFT),
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> SynCamMasterPipeline:
        """diffusers' ``from_pretrained``, with a Hub repo id fetched through ``syncammaster.hub``: from the cache or
        the Hub, or one line (``HubError``) naming the repo when it cannot be. ``revision``, ``cache_dir``, ``token``
        and ``local_files_only`` go to the download."""
        hub_kwargs = {key: kwargs.pop(key) for key in ("revision", "cache_dir", "token", "local_files_only")
                      if key in kwargs}
        novel_view_adapter = kwargs.pop("novel_view_adapter", True)
        folder = resolve_folder(pretrained_model_name_or_path, **hub_kwargs)
        pipe = super().from_pretrained(folder, **kwargs)
        if novel_view_adapter:
            pipe.load_novel_view_adapter(folder)
        return pipe

    # ------------------------------------------------------------------ the novel-view adapter

    def load_novel_view_adapter(self, model_folder: str | os.PathLike) -> bool:
        """Loads the novel-view LoRA of a model folder (its ``novel_view_lora/``, written by the sync stage with
        ``lora_rank``) as the adapter ``"novel_view"``, off until a call gives a ``reference_video``.
        ``from_pretrained`` does this unless given ``novel_view_adapter=False``. Returns whether the folder has one; a
        damaged one raises ``ModelFilesError`` (one line)."""
        from .lora import LORA_WEIGHT_NAME, NOVEL_VIEW_ADAPTER, NOVEL_VIEW_LORA_DIR, has_adapter

        directory = Path(model_folder) / NOVEL_VIEW_LORA_DIR
        if not directory.exists():
            return False
        file = directory / LORA_WEIGHT_NAME
        fix = f"export the model again, or remove {directory} to use the model without its novel-view adapter"
        if not file.is_file():
            raise ModelFilesError(f"{directory} holds no {LORA_WEIGHT_NAME}; {fix}")
        check_weights_file(file, fix)
        try:
            self.load_lora_weights(directory, weight_name=LORA_WEIGHT_NAME, adapter_name=NOVEL_VIEW_ADAPTER)
        except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as error:
            reason = first_sentence(error)
            raise ModelFilesError(f"cannot load the novel-view adapter {file} ({reason}); {fix}") from None
        if not has_adapter(self.transformer):
            raise ModelFilesError(f"{file} holds no LoRA layers of this model's transformer; {fix}")
        self._use_novel_view_adapter(False)
        return True

    @property
    def has_novel_view_adapter(self) -> bool:
        from .lora import has_adapter

        return has_adapter(self.transformer)

    def _use_novel_view_adapter(self, on: bool) -> None:
        """Turns the novel-view adapter on or off, leaving the other LoRAs' choice and scales as they are."""
        from .lora import NOVEL_VIEW_ADAPTER

        if not self.has_novel_view_adapter:
            return
        active = [name for name in self.get_active_adapters() if name != NOVEL_VIEW_ADAPTER]
        self.transformer.set_adapter([*active, NOVEL_VIEW_ADAPTER] if on else active)

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        """diffusers' ``save_pretrained``; a loaded novel-view adapter goes into ``novel_view_lora/`` (diffusers' LoRA
        file) and the transformer's own weights are saved without it."""
        from peft.utils import get_peft_model_state_dict

        from .lora import LORA_WEIGHT_NAME, NOVEL_VIEW_ADAPTER, NOVEL_VIEW_LORA_DIR

        if not self.has_novel_view_adapter:
            return super().save_pretrained(save_directory, *args, **kwargs)
        others = [name for name in self.transformer.peft_config if name != NOVEL_VIEW_ADAPTER]
        if others:
            raise ValueError(f"the transformer also carries the LoRAs {others}, which would be saved into its weights; "
                             "remove them first (pipe.delete_adapters(names)) or fuse them (pipe.fuse_lora)")
        layers = get_peft_model_state_dict(self.transformer, adapter_name=NOVEL_VIEW_ADAPTER)
        metadata = self.transformer.peft_config[NOVEL_VIEW_ADAPTER].to_dict()
        on = NOVEL_VIEW_ADAPTER in self.get_active_adapters()
        self.transformer.unload_lora()  # the plain layers, with the weights the adapter was trained over
        try:
            super().save_pretrained(save_directory, *args, **kwargs)
            self.save_lora_weights(Path(save_directory) / NOVEL_VIEW_LORA_DIR, transformer_lora_layers=layers,
                                   weight_name=LORA_WEIGHT_NAME, transformer_lora_adapter_metadata=metadata)
        finally:
            self.load_lora_weights({f"transformer.{key}": value for key, value in layers.items()},
                                   adapter_name=NOVEL_VIEW_ADAPTER)
            self._use_novel_view_adapter(on)

    @classmethod
    def lora_state_dict(cls, pretrained_model_name_or_path_or_dict, **kwargs):
        """Wan's LoRA formats (``WanLoraLoaderMixin.lora_state_dict``), plus the MVS layers under their original names.

        diffusers/peft keys need nothing more. A LoRA with the original Wan (``diffusion_model.``) or kohya/musubi
        (``lora_unet_``) names may also hold the MVS layers (``mvs_attn``, ``projector``, ``cam_encoder``), which
        diffusers' converter does not know: those are converted here (``syncammaster.lora``) and the rest by diffusers.
        """
        from .lora import has_original_mvs_keys, load_lora_file, lora_file_keys, split_mvs_lora

        source = pretrained_model_name_or_path_or_dict
        if isinstance(source, dict):
            keys = list(source)
        elif os.path.isfile(source):
            keys = lora_file_keys(source)
        else:
            keys = []  # a folder: diffusers finds the weight file
        if not has_original_mvs_keys(keys):
            return super().lora_state_dict(source, **kwargs)
        mvs, rest = split_mvs_lora(source if isinstance(source, dict) else load_lora_file(source))
        return_metadata = kwargs.get("return_lora_metadata", False)
        if rest:
            state_dict = super().lora_state_dict(rest, **kwargs)
            state_dict, metadata = state_dict if return_metadata else (state_dict, None)
        else:
            state_dict, metadata = {}, None
        state_dict = {**state_dict, **mvs}
        return (state_dict, metadata) if return_metadata else state_dict

    def training_intrinsics(self, width: int, height: int) -> Intrinsics:
        """Pixel intrinsics of a (width x height) video under the camera model the transformer was trained with."""
        return Intrinsics.centered(width, height, self.config.focal_length_per_side)

    # ------------------------------------------------------------------ checks

    def check_inputs(
        self,
        prompt,
        negative_prompt,
        height: int,
        width: int,
        num_frames: int,
        num_inference_steps: int,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        num_videos_per_prompt: int = 1,
        callback_on_step_end_tensor_inputs=("latents",),
        output_type: str = "np",
    ) -> None:
        if self.transformer is None:
            raise ValueError("the pipeline has no transformer; build it with one to generate (without, it only encodes "
                             "prompts: `encode_prompt`)")
        if prompt is not None and prompt_embeds is not None:
            raise ValueError("give `prompt` or `prompt_embeds`, not both")
        if prompt is None and prompt_embeds is None:
            raise ValueError("give a `prompt` (or its `prompt_embeds`)")
        if prompt is not None and not isinstance(prompt, str) and not (
            isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt)
        ):
            raise ValueError(f"`prompt` must be a string or a non-empty list of strings, got {prompt!r}")
        if negative_prompt is not None and negative_prompt_embeds is not None:
            raise ValueError("give `negative_prompt` or `negative_prompt_embeds`, not both")
        if negative_prompt is not None and not isinstance(negative_prompt, (str, list)):
            raise ValueError(f"`negative_prompt` must be a string or a list of strings, got {negative_prompt!r}")
        text_dim = self.transformer.config.text_dim
        for name, embeds in (("prompt_embeds", prompt_embeds), ("negative_prompt_embeds", negative_prompt_embeds)):
            if embeds is None:
                continue
            if not isinstance(embeds, torch.Tensor) or embeds.ndim != 3 or embeds.shape[-1] != text_dim:
                shape = tuple(embeds.shape) if isinstance(embeds, torch.Tensor) else type(embeds).__name__
                raise ValueError(f"`{name}` must be a tensor (prompts, tokens, {text_dim}), got {shape}")
            if not torch.isfinite(embeds).all():
                raise ValueError(f"`{name}` holds NaN or infinite values")
        if isinstance(num_videos_per_prompt, bool) or not isinstance(num_videos_per_prompt, int) or (
            num_videos_per_prompt < 1
        ):
            raise ValueError(f"`num_videos_per_prompt` must be an integer >= 1, got {num_videos_per_prompt!r}")
        unknown = [k for k in callback_on_step_end_tensor_inputs or () if k not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(
                f"`callback_on_step_end_tensor_inputs` names {unknown}; a callback may read "
                f"{self._callback_tensor_inputs}"
            )
        if output_type not in ("np", "pt", "pil", "latent"):
            raise ValueError(f"`output_type` must be 'np', 'pt', 'pil' or 'latent', got {output_type!r}")
        if output_type != "latent" and self.vae is None:
            raise ValueError(f"`output_type`={output_type!r} decodes with the VAE, and the pipeline has none; use "
                             "output_type='latent' or build the pipeline with a vae")
        multiple = self.vae_scale_factor_spatial * self.transformer.config.patch_size[1]
        for name, value in (("height", height), ("width", width)):
            if value < multiple or value % multiple:
                lower = max(multiple, value // multiple * multiple)
                raise ValueError(
                    f"`{name}`={value} is not a positive multiple of {multiple}; nearest valid: {lower} or "
                    f"{lower + multiple}"
                )
        stride = self.vae_scale_factor_temporal
        if num_frames < 1 or (num_frames - 1) % stride:
            lower = max(1, (num_frames - 1) // stride * stride + 1)
            raise ValueError(
                f"`num_frames`={num_frames} is not of the form {stride}k+1; nearest valid: {lower} or {lower + stride}"
            )
        if num_inference_steps < 1:
            raise ValueError(f"`num_inference_steps` must be >= 1, got {num_inference_steps}")

    def camera_embedding_for(self, rig: CameraRig | torch.Tensor, num_frames: int) -> torch.Tensor:
        """(V, F_latent, 12) relative camera embedding of a rig (or an embedding given directly), checked."""
        if isinstance(rig, CameraRig):
            camera_embedding = rig.embedding(num_frames, temporal_stride=self.vae_scale_factor_temporal)
        elif isinstance(rig, torch.Tensor):
            camera_embedding = rig.float()
        else:
            raise ValueError(f"`rig` must be a CameraRig or a (V, F, 12) camera embedding, got {type(rig).__name__}")
        latent_frames = (num_frames - 1) // self.vae_scale_factor_temporal + 1
        if camera_embedding.ndim != 3 or camera_embedding.shape[1:] != (latent_frames, 12):
            raise ValueError(
                f"camera embedding has shape {tuple(camera_embedding.shape)}; {num_frames} frames need "
                f"(V, {latent_frames}, 12)"
            )
        if not torch.isfinite(camera_embedding).all():
            raise ValueError("camera embedding holds NaN or infinite values; check the rig's matrices")
        return camera_embedding

    def prepare_reference(
        self,
        reference_video,
        height: int,
        width: int,
        num_frames: int,
        device: torch.device,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The given video of novel-view synthesis: its first ``num_frames`` frames, resized and centre-cropped to
        (height, width) as the training data was, and their normalised VAE latent (the posterior mean, as cached for
        training).

        Args:
            reference_video: a video file (sampled from its start at the model's ``default_fps``,
                :func:`syncammaster.video.read_clip`); or frames (T, H, W, 3), uint8 or float in [0, 1], as a numpy
                array, a tensor or a list of PIL images; or a tensor (T, 3, H, W) in [0, 1] (one view of
                ``output_type="pt"``).

        Returns:
            pixels (3, num_frames, height, width) float32 in [-1, 1], and the latent (C, F_latent, h, w) float32.
        """

        stride = self.vae_scale_factor_temporal
        if num_frames < stride + 1:
            raise ValueError(f"`num_frames`={num_frames} with a reference video: a video needs at least {stride + 1} "
                             f"frames ({stride}k+1); give num_frames={stride + 1} or more")
        try:
            frames = reference_frames(reference_video, num_frames, self.config.default_fps)  # (T, H', W', 3) uint8
        except VideoTooShortError as e:
            raise ValueError(f"{e}; {_frame_count_hint(e.available, stride)}") from None
        if frames.shape[0] < num_frames:
            raise ValueError(
                f"the reference video has {frames.shape[0]} frames, fewer than the {num_frames} to generate; "
                f"{_frame_count_hint(frames.shape[0], stride)}"
            )
        pixels = resize_and_crop(frames[:num_frames], height, width).permute(1, 0, 2, 3)  # (3, T, H, W)
        vae_device = get_module_execution_device(self.vae)
        latent = encode_videos(self.vae, pixels.unsqueeze(0).to(vae_device))[0]  # (C, F, h, w)
        return pixels, latent.to(device)

    # ------------------------------------------------------------------ sampling

    def _set_flow_timesteps(self, num_inference_steps: int, device: torch.device) -> torch.Tensor:
        """The released schedule: sigmas linspace(1, 0, n + 1)[:-1], shifted by the scheduler's shift."""
        accepts_sigmas = "sigmas" in inspect.signature(self.scheduler.set_timesteps).parameters
        if accepts_sigmas:
            sigmas = np.linspace(1.0, 0.0, num_inference_steps + 1)[:-1]
            self.scheduler.set_timesteps(sigmas=sigmas, device=device)
        else:
            self.scheduler.set_timesteps(num_inference_steps, device=device)
        return self.scheduler.timesteps

    def prepare_latents(
        self,
        num_samples: int,
        num_views: int,
        num_channels: int,
        height: int,
        width: int,
        num_frames: int,
        device: torch.device,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The initial noise (S*V, C, F_latent, H/8, W/8) in float32, view-major (row = sample * V + view).

        One generator draws all rows at once (as the release does). A list holds one generator per sample, which
        draws the noise of that sample's V views, so a sample's videos do not depend on the rest of the batch.
        ``latents``, when given, are checked and used instead.
        """
        shape = (
            num_samples * num_views,
            num_channels,
            (num_frames - 1) // self.vae_scale_factor_temporal + 1,
            height // self.vae_scale_factor_spatial,
            width // self.vae_scale_factor_spatial,
        )
        if latents is not None:
            if not isinstance(latents, torch.Tensor) or tuple(latents.shape) != shape:
                given = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
                raise ValueError(
                    f"`latents` has shape {given}; {num_samples} sample(s) x {num_views} views at this size need "
                    f"{shape} (rows view-major: sample * {num_views} + view)"
                )
            if not torch.isfinite(latents).all():
                raise ValueError("`latents` holds NaN or infinite values")
            return latents.to(device, torch.float32)
        if isinstance(generator, list):
            per_sample = (num_views, *shape[1:])
            return torch.cat([randn_tensor(per_sample, generator=g, device=device, dtype=torch.float32)
                              for g in generator])
        return randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)

    def _reference_input(
        self,
        reference_latent: torch.Tensor,
        mode: str,
        step: int,
        generator: torch.Generator | list[torch.Generator] | None,
    ) -> torch.Tensor:
        """What the reference view's latent rows hold at denoising ``step``: the clean latent (C, F, h, w), or
        ("renoise") the clean latent noised to the step's sigma, x = (1 - sigma) x0 + sigma noise, with fresh noise
        each step: one draw for all samples from a single generator, (S, C, F, h, w) from a list of S generators."""
        if mode == "clean":
            return reference_latent
        sigma = float(self.scheduler.sigmas[step])
        draw = functools.partial(randn_tensor, reference_latent.shape, device=reference_latent.device,
                                 dtype=reference_latent.dtype)
        noise = torch.stack([draw(generator=g) for g in generator]) if isinstance(generator, list) else draw(
            generator=generator)
        return (1 - sigma) * reference_latent + sigma * noise

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (N, C, F, h, w) -> videos (N, 3, T, H, W) in [-1, 1], all N in one VAE call.

        One call for all videos is also the fast path on a CPU: torch hands a 3-D convolution to oneDNN only for a
        batch of two or more (or a large input) and runs a single small video through its much slower generic
        kernel. ``pipe.vae.enable_slicing()`` decodes one video at a time instead, for less memory. On a CPU the
        VAE's 3-D convolution weights are first stored channels-last (``use_channels_last_3d``), oneDNN's faster
        layout there.
        """
        if get_module_execution_device(self.vae).type == "cpu":  # honours model CPU offload hooks
            use_channels_last_3d(self.vae)
        return decode_latents(self.vae, latents)

    def _text_context(
        self,
        prompt_embeds: torch.Tensor,
        negative_prompt_embeds: torch.Tensor | None,
        repeats: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """The transformer's text input (K*S*V, L, text_dim): each prompt's embedding (B, L, text_dim) repeated over
        its ``repeats`` = num_videos_per_prompt * V rows; under guidance the unconditional rows come first."""
        context = prompt_embeds.to(device, dtype).repeat_interleave(repeats, dim=0)  # (S*V, L, text_dim)
        if negative_prompt_embeds is None:
            return context
        negative_context = negative_prompt_embeds.to(device, dtype).repeat_interleave(repeats, dim=0)
        return torch.cat([negative_context, context])  # (2*S*V, L, text_dim)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        rig: CameraRig | torch.Tensor | None = None,
        negative_prompt: str | list[str] | None = None,
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float | None = None,
        num_videos_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        seed: int | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        sync: bool = True,
        output_type: str = "np",
        return_dict: bool = True,
        attention_kwargs: dict[str, Any] | None = None,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs: list[str] | tuple[str, ...] = ("latents",),
        max_sequence_length: int | None = None,
        reference_video=None,
        reference_view: int = 0,
        reference_mode: str = "clean",
        process_group: dist.ProcessGroup | None = None,
        novel_view_adapter: bool = True,
    ) -> SynCamMasterPipelineOutput | tuple:
        """Generates one video per camera of ``rig`` for each prompt.

        The keyword arguments of diffusers' ``WanPipeline`` mean the same here; ``rig``, ``seed``, ``sync``,
        ``reference_*`` and ``process_group`` are this pipeline's own.

        Args:
            prompt: a caption, or a list of B captions (each gets its own V synchronized videos).
            rig: the cameras (``CameraRig``, static or one pose per frame), or an embedding (V, F_latent, 12).
            negative_prompt: guidance's negative caption; ``None``: the model's default (``config.negative_prompt``,
                Wan's for the released model); ``""``: the empty caption.
            height, width: pixels, multiples of 16. num_frames: 4k + 1. ``None``: the size the model was trained at
                (``config.default_height`` etc.; 480 x 832, 81 frames for the released model).
            num_inference_steps: Euler flow-matching steps. guidance_scale: classifier-free guidance (<= 1: none;
                ``None``: the model's ``config.default_guidance_scale``, 5.0 for the released model). Whether the
                unconditional branch runs is decided here; a callback may change the scale of later steps
                (``pipe._guidance_scale``), as in diffusers.
            num_videos_per_prompt: N scenes per prompt, each with its own noise: S = B * N samples of V videos.
            generator / seed: noise source; the same seed gives the same videos. A list of generators holds one per
                sample (S of them, prompt-major: all N of the first prompt first), each drawing the noise of its
                sample's V views, so a sample's videos do not depend on the rest of the batch.
            latents: the initial noise (S*V, C, F_latent, H/8, W/8), view-major (row = sample * V + view),
                instead of drawing it.
            prompt_embeds: text embeddings (B, L, text_dim) in place of ``prompt``, one row per prompt (e.g. from
                ``encode_prompt``); negative_prompt_embeds: the same for the negative caption.
            sync: ``False`` bypasses the multi-view synchronization module (views generated independently).
            output_type: "np", "pt", "pil" or "latent" (see ``SynCamMasterPipelineOutput``).
            attention_kwargs: passed to the transformer; ``{"scale": s}`` scales the loaded LoRAs, as in diffusers.
            callback_on_step_end: called as ``fn(pipe, step, timestep, tensors)`` after each step, with the tensors
                named in ``callback_on_step_end_tensor_inputs`` (of ``pipe._callback_tensor_inputs``: ``latents``
                (S*V, C, F, h, w); ``prompt_embeds`` and ``negative_prompt_embeds`` (B, L, text_dim)); a returned
                dict may replace any of them. A diffusers ``PipelineCallback`` names its own tensor inputs.
            max_sequence_length: text tokens per prompt; default: the length the model was trained with.
            reference_video: novel-view synthesis (the paper's Sec. 3.5): a given video becomes the view of camera
                ``reference_view`` and the other views are generated around it. A file (upright, sampled from its
                start at ``config.default_fps``), or frames (T, H, W, 3) uint8 or float in [0, 1] (numpy, tensor or
                PIL images), or a tensor (T, 3, H, W) in [0, 1]; its first ``num_frames`` frames (at least 5) are
                resized and centre-cropped to the output size. In the output, that view is the given video as
                resized.
            reference_view: the index, in the rig, of the camera that filmed ``reference_video``.
            reference_mode: ``"clean"``: the reference latent stays clean at timestep 0 throughout and its velocity
                is discarded; for models fine-tuned for it (``reference_view_prob`` in training, as the shipped small
                model is). ``"renoise"``: training-free; the reference latent is re-noised to the current noise
                level at every step; for models trained text-only, such as the released checkpoint.
            process_group: a ``torch.distributed`` group whose processes share this call's denoising (every one of
                them makes the same call): first the guidance branches (an even number of processes), then the views
                (``syncammaster.parallel``). Each process returns the same videos, those of a single process with
                the same seed (up to the order of floating-point sums). Not with a step cache enabled.
            novel_view_adapter: with a ``reference_video``, use the model's novel-view LoRA (``novel_view_lora/`` of
                its folder, loaded by ``from_pretrained``) together with any other active LoRAs; ``False``: the
                model's own weights (an ablation). Without a reference video it is always off, so text-to-views
                runs exactly the model without it.
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs

        # 1. Check inputs
        height = self.config.default_height if height is None else height
        width = self.config.default_width if width is None else width
        num_frames = self.config.default_num_frames if num_frames is None else num_frames
        guidance_scale = self.config.default_guidance_scale if guidance_scale is None else guidance_scale
        self.check_inputs(
            prompt,
            negative_prompt,
            height,
            width,
            num_frames,
            num_inference_steps,
            prompt_embeds,
            negative_prompt_embeds,
            num_videos_per_prompt,
            callback_on_step_end_tensor_inputs,
            output_type,
        )
        if rig is None:
            raise ValueError("give the cameras: `rig`, a CameraRig (e.g. CameraRig.preset('arc', num_views=4)) or a "
                             "(V, F, 12) camera embedding")
        camera_embedding = self.camera_embedding_for(rig, num_frames)
        prompts = None if prompt is None else [prompt] if isinstance(prompt, str) else list(prompt)
        batch_size = len(prompts) if prompts is not None else prompt_embeds.shape[0]
        num_samples, num_views = batch_size * num_videos_per_prompt, camera_embedding.shape[0]
        if reference_video is not None:
            if isinstance(reference_view, bool) or not isinstance(reference_view, (int, np.integer)) or not (
                0 <= reference_view < num_views
            ):
                raise ValueError(
                    f"`reference_view`={reference_view!r} is not a camera of the {num_views}-view rig; use 0 to "
                    f"{num_views - 1}"
                )
            if reference_mode not in REFERENCE_MODES:
                raise ValueError(
                    f"`reference_mode` must be one of {', '.join(REFERENCE_MODES)}, got {reference_mode!r}"
                )
            if self.vae is None:
                raise ValueError("a `reference_video` is encoded with the VAE, and the pipeline has none; build it "
                                 "with a vae")
        self._use_novel_view_adapter(reference_video is not None and novel_view_adapter)
        if generator is None and seed is not None:
            generator = torch.Generator("cpu").manual_seed(seed)
        if isinstance(generator, list) and len(generator) != num_samples:
            raise ValueError(
                f"got {len(generator)} generators for {num_samples} sample(s) ({batch_size} prompt(s) x "
                f"{num_videos_per_prompt} video(s) per prompt); give one generator per sample (it draws the noise "
                f"of the sample's {num_views} views) or a single generator"
            )
        self._guidance_scale = guidance_scale
        self._attention_kwargs = attention_kwargs
        self._current_timestep = None
        self._interrupt = False
        device = self._execution_device
        do_cfg = self.do_classifier_free_guidance
        num_branches = 2 if do_cfg else 1  # guidance: unconditional and conditional rows
        split = None
        if process_group is not None and dist.get_world_size(process_group) > 1:
            if self.transformer.is_cache_enabled:
                raise ValueError(
                    "a step cache does not combine with several processes (each would skip different steps); "
                    "disable the cache or run one process"
                )
            split = split_sample(process_group, num_views, num_branches)
        max_sequence_length = max_sequence_length or self.config.max_sequence_length
        if negative_prompt is None and negative_prompt_embeds is None:
            negative_prompt = self.config.negative_prompt
        if isinstance(negative_prompt, str):
            negative_prompt = [negative_prompt] * batch_size

        # 2. Encode the prompts once; each prompt's embedding is shared by its N samples and their V views.
        if (prompts is not None or (do_cfg and negative_prompt_embeds is None)) and (
            self.text_encoder is None or self.tokenizer is None
        ):
            raise ValueError("the pipeline has no text encoder: give `prompt_embeds` (and `negative_prompt_embeds` "
                             "with guidance_scale > 1) instead of captions")
        prompt_embeds, negative_prompt_embeds = self.encode_prompt(
            prompts,
            negative_prompt,
            do_classifier_free_guidance=do_cfg,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            max_sequence_length=max_sequence_length,
            device=device,
        )  # (B, L, text_dim) each
        if do_cfg and negative_prompt_embeds.shape != prompt_embeds.shape:
            raise ValueError(
                f"`negative_prompt_embeds` has shape {tuple(negative_prompt_embeds.shape)}, the prompt embeddings "
                f"{tuple(prompt_embeds.shape)}; give one of the same shape"
            )
        if not do_cfg:
            negative_prompt_embeds = None
        transformer_dtype = self.transformer.dtype
        repeats = num_videos_per_prompt * num_views
        context = self._text_context(prompt_embeds, negative_prompt_embeds, repeats, device, transformer_dtype)

        # 3. Cameras: the same rig for every sample, view-major.
        cameras = camera_embedding.to(device, transformer_dtype).repeat(num_samples * num_branches, 1, 1)

        # 4. Timesteps and initial noise
        timesteps = self._set_flow_timesteps(num_inference_steps, device)
        latents = self.prepare_latents(
            num_samples,
            num_views,
            self.transformer.config.in_channels,
            height,
            width,
            num_frames,
            device,
            generator,
            latents,
        )  # (S*V, C, F, h, w)

        # 5. The given view, if any: latent rows s*V + reference_view of every sample s.
        reference_rows = None
        if reference_video is not None:
            reference_pixels, reference_latent = self.prepare_reference(
                reference_video, height, width, num_frames, device
            )  # (3, T, H, W), (C, F, h, w)
            reference_rows = torch.arange(num_samples, device=device) * num_views + reference_view  # (S,)
            is_reference = torch.zeros(num_samples * num_views, dtype=torch.bool, device=device)
            is_reference[reference_rows] = True
            is_reference = is_reference.repeat(num_branches)  # both guidance branches see it clean

        # 6. Denoise: conditional and unconditional passes batched in one forward; with several processes, each
        # runs its share of the rows and all of them take the same step with everyone's velocities.
        rows, local_views, split_kwargs = slice(None), num_views, {}
        if split is not None:
            rows = split.share.rows(num_samples, num_views).to(device)
            local_views = split.share.stop - split.share.start
            split_kwargs = {"view_split": split.views} if split.views is not None else {}
            context, cameras = context[rows], cameras[rows]
        self._num_timesteps = len(timesteps)
        self.scheduler.set_begin_index(0)
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for step, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                self._current_timestep = t
                if reference_rows is not None:
                    latents[reference_rows] = self._reference_input(reference_latent, reference_mode, step, generator)
                model_input = torch.cat([latents, latents]) if do_cfg else latents
                # The released model was trained and sampled with timesteps in the model's dtype.
                timestep = t.to(transformer_dtype).float().expand(model_input.shape[0])
                if reference_rows is not None and reference_mode == "clean":
                    timestep = torch.where(is_reference, torch.zeros_like(timestep), timestep)  # a clean view
                velocity = self.transformer(
                    model_input[rows].to(transformer_dtype),
                    timestep[rows],
                    context,
                    camera_embedding=cameras if sync else None,
                    num_views=local_views,
                    return_dict=False,
                    attention_kwargs=attention_kwargs,
                    **split_kwargs,
                )[0].float()
                if split is not None:
                    velocity = split.gather_rows(velocity, num_samples, num_views)  # (K*S*V, C, F, h, w)
                if do_cfg:
                    uncond, cond = velocity.chunk(2)
                    velocity = uncond + self.guidance_scale * (cond - uncond)
                latents = self.scheduler.step(velocity, t, latents, return_dict=False)[0]
                if reference_rows is not None:
                    latents[reference_rows] = reference_latent  # its velocity is discarded: it stays as given
                if callback_on_step_end is not None:
                    tensors = {"latents": latents, "prompt_embeds": prompt_embeds,
                               "negative_prompt_embeds": negative_prompt_embeds}
                    outputs = callback_on_step_end(
                        self, step, t, {name: tensors[name] for name in callback_on_step_end_tensor_inputs}
                    ) or {}  # a callback that returns nothing changes nothing
                    latents = outputs.get("latents", latents)
                    new_embeds = (outputs.get("prompt_embeds", prompt_embeds),  # (B, L, text_dim)
                                  outputs.get("negative_prompt_embeds", negative_prompt_embeds) if do_cfg else None)
                    if new_embeds[0] is not prompt_embeds or new_embeds[1] is not negative_prompt_embeds:
                        prompt_embeds, negative_prompt_embeds = new_embeds
                        context = self._text_context(
                            prompt_embeds, negative_prompt_embeds, repeats, device, transformer_dtype
                        )[rows]
                progress_bar.update()
        self._current_timestep = None

        # 7. Decode all views and arrange as (S, V, ...); the given view is the given video.
        if output_type == "latent":
            videos = latents
        else:
            decoded = self.decode_latents(latents)  # (S*V, 3, T, H, W) in [-1, 1]
            if reference_rows is not None:
                decoded[reference_rows.cpu()] = reference_pixels
            videos = self.video_processor.postprocess_video(decoded, output_type=output_type)
            if output_type == "pil":
                videos = [videos[s * num_views : (s + 1) * num_views] for s in range(num_samples)]
            elif output_type == "np":
                videos = videos.reshape(num_samples, num_views, *videos.shape[1:])  # (S, V, T, H, W, 3)
            else:
                videos = videos.unflatten(0, (num_samples, num_views))  # (S, V, T, 3, H, W)

        self.maybe_free_model_hooks()
        if not return_dict:
            return (videos,)
        return SynCamMasterPipelineOutput(frames=videos)


def load_model_folder(folder: str | os.PathLike, dtype=None, novel_view_adapter: bool = True) -> SynCamMasterPipeline:
    """A ``SynCamMasterPipeline`` from a folder checked first (``check_model_folder``); ``dtype``: a torch dtype or
    None; ``novel_view_adapter``: load the folder's novel-view LoRA, if it has one. A problem only loading reveals (a
    tensor of the wrong shape) raises ``ModelFilesError`` with the loader's first sentence."""
    folder = check_model_folder(folder)
    try:
        return SynCamMasterPipeline.from_pretrained(folder, novel_view_adapter=novel_view_adapter,
                                                    **({} if dtype is None else {"dtype": dtype}))
    except ModelFilesError:
        raise
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        raise ModelFilesError(f"cannot load the model in {folder} ({first_sentence(error)}); {SAVE_AGAIN}") from None


def reference_frames(video, num_frames: int | None = None, fps: float | None = None) -> np.ndarray:
    """A given video as (T, H, W, 3) uint8 frames: from a file (its first ``num_frames`` frames sampled at ``fps``,
    upright: :func:`syncammaster.video.read_clip`), a list of PIL images, or an array / tensor of frames
    (T, H, W, 3), uint8 or float in [0, 1], or (T, 3, H, W) float in [0, 1]. Raises a one-line ``ValueError``."""
    if isinstance(video, (str, os.PathLike)):
        frames = read_clip(video, num_frames, fps).frames  # file problems: VideoError (a ValueError)
    elif isinstance(video, (list, tuple)):
        if not video:
            raise ValueError("the reference video is an empty list of frames; give at least one frame")
        frames = np.stack([np.asarray(frame.convert("RGB")) if hasattr(frame, "convert") else np.asarray(frame)
                           for frame in video])
    elif isinstance(video, torch.Tensor):
        frames = video.detach().cpu()
        if frames.ndim == 4 and frames.shape[1] == 3 and frames.shape[-1] != 3:
            frames = frames.permute(0, 2, 3, 1)  # (T, 3, H, W) -> (T, H, W, 3)
        frames = frames.float().numpy() if frames.is_floating_point() else frames.numpy()
    elif isinstance(video, np.ndarray):
        frames = video
    else:
        raise ValueError(f"the reference video must be a file, frames or a tensor, got {type(video).__name__}")
    if frames.ndim == 3 and frames.shape[-1] == 3:
        raise ValueError(f"the reference video is a single image {frames.shape}; give a video (T, H, W, 3)")
    if frames.ndim != 4 or frames.shape[-1] != 3 or min(frames.shape) < 1:
        raise ValueError(f"the reference video must be frames of shape (T, H, W, 3), got {tuple(frames.shape)}")
    if frames.dtype != np.uint8:
        frames = frames.astype(np.float32)
        if not np.isfinite(frames).all():
            raise ValueError("the reference video holds NaN or infinite values; give finite pixel values")
        if frames.min() < 0 or frames.max() > 1:
            raise ValueError(
                f"float reference frames must lie in [0, 1], got [{frames.min():.3g}, {frames.max():.3g}]; give "
                "uint8 frames or scale them to [0, 1]"
            )
        frames = (frames * 255).round().astype(np.uint8)
    return frames


def _frame_count_hint(available: int, stride: int) -> str:
    """Advice for a reference video of ``available`` frames: the frame counts (stride k + 1, at least stride + 1)
    that fit, or that a longer video is needed."""
    counts = fitting_frame_counts(available, stride, stride + 1)
    if not counts:
        return f"give a video of at least {stride + 1} frames"
    return f"give num_frames {' or '.join(str(n) for n in counts[-3:])} ({stride}k+1 counts that fit) or a longer video"
