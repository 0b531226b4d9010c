"""Tables 4, 6 and 7 of the speed benchmark (``speed.py``): the default generate split into its phases, the VAE
against its batch size, and one training step eager against compiled."""

from __future__ import annotations

import time

import torch

from syncammaster import CameraRig, SynCamMasterPipeline, SynCamMasterTransformer3DModel
from syncammaster.app import default_model_dir

from harness import Table, fmt, median_seconds, synchronize
from speed_config import (
    GENERATE_FRAMES,
    GENERATE_GUIDANCE,
    GENERATE_RIG,
    GENERATE_SIZE,
    GENERATE_VIEWS,
    LATENT_FRAMES,
    LATENT_SIZE,
    PROMPT,
    Settings,
    log,
)


class _DenoiseClock:
    """Start of the first transformer forward and end of the last step of one pipeline call."""

    def __init__(self, device: torch.device):
        self.device = device
        self.first_forward: float | None = None
        self.last_step_end = 0.0

    def before_forward(self, module: torch.nn.Module, args: tuple) -> None:
        if self.first_forward is None:
            synchronize(self.device)
            self.first_forward = time.perf_counter()

    def after_step(self, pipe: SynCamMasterPipeline, step: int, timestep: torch.Tensor, tensors: dict) -> None:
        synchronize(self.device)
        self.last_step_end = time.perf_counter()


def bench_generate(settings: Settings) -> Table:
    """Table 4: the default generate split into its phases."""
    device = settings.device
    pipe = SynCamMasterPipeline.from_pretrained(default_model_dir(), dtype=settings.dtype).to(device)
    pipe.set_progress_bar_config(disable=True)
    call = {
        "prompt": PROMPT,
        "rig": CameraRig.load(GENERATE_RIG, num_views=GENERATE_VIEWS),
        "negative_prompt": None,  # the model's default, as the CLI passes it without --negative-prompt
        "height": GENERATE_SIZE,
        "width": GENERATE_SIZE,
        "num_frames": GENERATE_FRAMES,
        "guidance_scale": GENERATE_GUIDANCE,
        "seed": 0,
    }
    log("generate: warm-up")
    warm = pipe(**call, num_inference_steps=1, output_type="latent").videos
    pipe.decode_latents(warm[:1])

    log("generate: text encoding")
    with torch.no_grad():
        text_s = median_seconds(
            lambda: pipe.encode_prompt(
                [PROMPT],
                [pipe.config.negative_prompt],  # what the call uses for negative_prompt=None
                do_classifier_free_guidance=GENERATE_GUIDANCE > 1.0,
                max_sequence_length=pipe.config.max_sequence_length,
                device=device,
            ),
            settings.warmup,
            settings.repeats,
            device,
        )

    log(f"generate: {settings.steps} denoising steps")
    clock = _DenoiseClock(device)
    hook = pipe.transformer.register_forward_pre_hook(clock.before_forward)
    synchronize(device)
    start = time.perf_counter()
    latents = pipe(
        **call, num_inference_steps=settings.steps, output_type="latent", callback_on_step_end=clock.after_step
    ).videos  # (V, C, F, h, w)
    synchronize(device)
    end = time.perf_counter()
    hook.remove()
    denoise_s = clock.last_step_end - clock.first_forward
    other_s = max(0.0, (clock.first_forward - start) - text_s) + (end - clock.last_step_end)

    log("generate: decoding")
    with torch.no_grad():
        synchronize(device)
        decode_start = time.perf_counter()
        decoded = pipe.decode_latents(latents)  # (V, 3, T, H, W)
        pipe.video_processor.postprocess_video(decoded, output_type="np")
        synchronize(device)
        decode_s = time.perf_counter() - decode_start

    total = text_s + denoise_s + decode_s + other_s
    batch = 2 * GENERATE_VIEWS if GENERATE_GUIDANCE > 1.0 else GENERATE_VIEWS
    phases = [
        ("text encoding (prompt + negative)", text_s),
        (f"denoising ({settings.steps} steps, {batch} videos per forward)", denoise_s),
        (f"VAE decoding ({GENERATE_VIEWS} videos)", decode_s),
        ("other (checks, cameras, noise, schedule)", other_s),
    ]
    rows = [[name, fmt(s, 3), fmt(100 * s / total)] for name, s in phases]
    rows.append(["total", fmt(total, 3), "100.0"])
    return Table(
        f"4. Default generate ({GENERATE_VIEWS} views, {GENERATE_FRAMES} frames, {GENERATE_SIZE}x{GENERATE_SIZE}, "
        f"{settings.steps} steps, CFG {GENERATE_GUIDANCE:g}), shipped model",
        ["phase", "seconds", "share %"],
        rows,
        [
            f"per denoising step: {denoise_s / settings.steps * 1e3:,.1f} ms; text encoding is the median of "
            f"{settings.repeats} encode_prompt calls, denoising and the rest come from one call, decoding from one "
            "decode_latents + postprocess_video"
        ],
    )


def bench_vae(settings: Settings) -> Table:
    """Table 6: the shipped VAE's time per video against the number of videos encoded or decoded together."""
    from diffusers import AutoencoderKLWan

    device = settings.device
    vae = AutoencoderKLWan.from_pretrained(default_model_dir() / "vae", torch_dtype=settings.dtype).to(device).eval()
    generator = torch.Generator("cpu").manual_seed(0)
    largest = max(settings.vae_batches)
    videos = torch.rand(largest, 3, GENERATE_FRAMES, GENERATE_SIZE, GENERATE_SIZE, generator=generator) * 2 - 1
    videos = videos.to(device, settings.dtype)
    rows, single = [], {}
    with torch.no_grad():
        latents = torch.cat([vae.encode(video[None]).latent_dist.mode() for video in videos])
        frames = torch.cat([vae.decode(latent[None]).sample for latent in latents])
        for batch in settings.vae_batches:
            log(f"vae: batches of {batch}")
            encode_s = median_seconds(lambda b=batch: vae.encode(videos[:b]), 1, settings.repeats, device) / batch
            decode_s = median_seconds(lambda b=batch: vae.decode(latents[:b]), 1, settings.repeats, device) / batch
            single.setdefault("encode", encode_s)
            single.setdefault("decode", decode_s)
            latent_err = (vae.encode(videos[:batch]).latent_dist.mode() - latents[:batch]).abs().max().item()
            frame_err = (vae.decode(latents[:batch]).sample - frames[:batch]).abs().max().item()
            rows.append([
                str(batch), fmt(encode_s * 1e3), fmt(single["encode"] / encode_s, 2) + "x", fmt(decode_s * 1e3),
                fmt(single["decode"] / decode_s, 2) + "x", f"{max(latent_err, frame_err):.1e}",
            ])
    return Table(
        f"6. VAE time per video against batch ({GENERATE_FRAMES} frames, {GENERATE_SIZE}x{GENERATE_SIZE}), "
        "shipped VAE",
        ["batch", "encode ms/video", "speedup", "decode ms/video", "speedup", "max abs diff"],
        rows,
        [f"median of {settings.repeats} calls after a warm-up; max abs diff: batched against one-at-a-time latents "
         "and frames (values in [-1, 1] and latent units)"],
    )


# Batches of configs/small/base.toml and sync.toml: groups x views per group.
TRAINING_BATCHES = {"base": (8, 1), "sync": (2, 4)}


def bench_training(settings: Settings) -> Table:
    """Table 7: one training step of stages base and sync, eager against compiled."""
    from diffusers import WanTransformer3DModel

    from syncammaster.training import FlowMatchingModule

    config = {k: v for k, v in settings.transformer_config.items() if not k.startswith("_")}
    rows = []
    for stage, (groups, views) in TRAINING_BATCHES.items():
        generator = torch.Generator().manual_seed(0)
        batch = {
            "latents": torch.randn(groups, views, config["in_channels"], LATENT_FRAMES, LATENT_SIZE, LATENT_SIZE,
                                   generator=generator),
            "prompt_embeds": torch.randn(groups, settings.text_tokens, config["text_dim"], generator=generator),
            "camera": torch.randn(groups, views, LATENT_FRAMES, 12, generator=generator),
        }
        batch = {k: v.to(settings.device) for k, v in batch.items()}
        seconds, compile_s = {}, 0.0
        for compiled in (False, True):
            log(f"training: stage {stage}, {'compiled' if compiled else 'eager'}")
            torch.manual_seed(0)
            transformer = WanTransformer3DModel.from_config(config)
            if stage == "sync":
                transformer = SynCamMasterTransformer3DModel.from_wan(transformer)
            module = FlowMatchingModule(transformer.to(settings.device).train(), learning_rate=1e-4)
            optimizer = torch.optim.AdamW(module.trainable_parameters(), lr=1e-4)
            if compiled:
                transformer.compile()

            def step(module=module, optimizer=optimizer, batch=batch):
                optimizer.zero_grad()
                module.loss(batch, torch.Generator().manual_seed(1)).backward()
                optimizer.step()

            first = median_seconds(step, warmup=0, repeats=1, device=settings.device)  # compiles, when compiled
            seconds[compiled] = median_seconds(step, settings.warmup, settings.repeats, settings.device)
            if compiled:
                compile_s = first - seconds[True]
        rows.append([
            stage, f"{groups} x {views}", fmt(seconds[False], 3), fmt(seconds[True], 3),
            fmt(seconds[False] / seconds[True], 2) + "x", fmt(compile_s),
        ])
    return Table(
        "7. Training step, eager against compiled (shipped size, 17 frames at 128x128)",
        ["stage", "groups x views", "eager s/step", "compiled s/step", "speedup", "compile s"],
        rows,
        [f"median of {settings.repeats} steps after {settings.warmup} warm-up steps; fp32; loss, backward and AdamW "
         "step, without Lightning or data loading"],
    )
