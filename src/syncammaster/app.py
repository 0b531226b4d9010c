"""The application layer the command line, the web app, batch generation and the benchmarks share: load a
pipeline from what a user names (the shipped model, a folder, a Hub repo id, Wan + a released checkpoint), check
and read a reference video, turn on LoRAs and step caches, join the processes of a multi-process run, generate one
scene (the one call ``generate`` and ``generate --prompts`` make), draw its ``rig.png`` (in a child process while the
model loads, where possible) and write the scene folder; and the start-up of a command that loads a model.

Its failures are ``CommandError`` (or the package's ValueErrors), one line each; the callers print them.
Argument parsing lives in the :mod:`syncammaster.cli` package alone: the functions here take the parsed flags (an
``argparse.Namespace``) or plain values, never build a parser.
"""

from __future__ import annotations

import contextlib
import gc
import io
import multiprocessing
import os
import signal
import sys
from importlib import resources
from pathlib import Path

from .step_caches import STEP_CACHE_METHODS

RIG_PLOT_FILE = "rig.png"


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit code 1."""


def one_line(error: BaseException) -> str:
    """An error's message on one line (its class name when it has none)."""
    return " ".join(str(error).split()) or type(error).__name__


def default_model_dir() -> Path:
    """The small SynCamMaster shipped inside the package."""
    return Path(str(resources.files("syncammaster"))) / "assets" / "default_model"


@contextlib.contextmanager
def start_up():
    """The start-up of a command that loads a model: Python's cycle collector is paused while the libraries import
    and the model loads, then the start-up's garbage is collected once and what it built is frozen (``gc.freeze``).

    Nearly every object made then (modules, classes, the model: hundreds of thousands with torch, diffusers and
    transformers) lives as long as the process, so each full collection during the imports walks them all in vain,
    and so would the collection Python makes at exit; frozen, later collections skip them. Where the collector is
    already off, it is left as it is. The command line undoes the freeze for a caller in its own process
    (:func:`syncammaster.cli.main` with ``argv``). Time saved: benchmarks/RESULTS.md, 'Many scenes'.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.collect()
        gc.freeze()
        gc.enable()


# ---------------------------------------------------------------------- generate


def load_pipeline(args, novel_view_adapter: bool = True):
    """The pipeline the flags name (``--model``, a hub id, ``--wan`` + ``--checkpoint``, or the shipped model) on
    the device and in the dtype they ask for. ``novel_view_adapter``: load the model's novel-view LoRA if it has one
    (unless ``--no-novel-view-adapter``); a run without a given video passes False and skips its loading, since the
    adapter is used only with one."""
    import torch

    from .hub import resolve_folder
    from .pipeline import SynCamMasterPipeline, load_model_folder

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {
        "auto": torch.bfloat16 if device.startswith("cuda") else torch.float32,
        "fp32": torch.float32,
        "bf16": torch.bfloat16,
        "fp16": torch.float16,
    }[args.dtype]
    if getattr(args, "quiet", False):  # no loading or download bars either (diffusers', transformers', the Hub's)
        import diffusers
        import huggingface_hub
        import transformers

        diffusers.utils.logging.disable_progress_bar()
        transformers.utils.logging.disable_progress_bar()
        huggingface_hub.utils.disable_progress_bars()
    revision = getattr(args, "revision", None)
    if args.wan is not None:
        if args.model is not None:
            raise CommandError("give either --model or --wan (with --checkpoint), not both")
        pipe = SynCamMasterPipeline.from_wan(args.wan, args.checkpoint, torch_dtype=dtype, revision=revision)
    else:
        if args.checkpoint is not None:
            raise CommandError("--checkpoint needs --wan WAN (the Wan2.1-T2V diffusers folder or repo id it extends)")
        if args.model is None and not (default_model_dir() / "model_index.json").is_file():
            raise CommandError(
                "this installation has no shipped default model yet; pass --model DIR (a SynCamMaster "
                "diffusers folder) or --wan WAN_FOLDER --checkpoint step20000.ckpt"
            )
        model = resolve_folder(args.model, revision) if args.model is not None else default_model_dir()
        pipe = load_model_folder(model, dtype=dtype,
                                 novel_view_adapter=novel_view_adapter and not getattr(args, "no_novel_view_adapter",
                                                                                       False))
    if args.cpu_offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    if args.vae_tiling:
        pipe.vae.enable_tiling()
    if args.vae_slicing:
        pipe.vae.enable_slicing()
    return pipe


def check_step_cache(args) -> float | None:
    """``--cache`` / ``--cache-threshold``, checked before any model is loaded; the threshold to use."""
    from .step_caches import step_cache_config

    if args.cache is None:
        if args.cache_threshold is not None:
            raise CommandError("--cache-threshold needs --cache NAME")
        return None
    if args.cache == "faster" and args.no_sync:
        raise CommandError("--cache faster needs the multi-view module (it splits the camera batch); drop --no-sync")
    threshold = STEP_CACHE_METHODS[args.cache].default if args.cache_threshold is None else args.cache_threshold
    step_cache_config(args.cache, threshold, lambda: 0.0)  # a bad value fails here, in one line
    return threshold


def add_loras_and_step_cache(pipe, args, cache_threshold: float | None) -> None:
    """Loads each ``--lora FILE[:SCALE]`` into the transformer and turns on ``--cache``."""
    if args.lora:
        names = [f"lora{index}" for index in range(len(args.lora))]
        for name, (path, _) in zip(names, args.lora, strict=True):
            pipe.load_lora_weights(path, adapter_name=name)
        pipe.set_adapters(names, [scale for _, scale in args.lora])
    if args.cache is not None:
        from .step_caches import step_cache_config

        transformer = pipe.transformer
        transformer.enable_cache(step_cache_config(args.cache, cache_threshold, lambda: transformer.current_timestep))


def check_out_dir_free(out: Path, rig) -> None:
    """Fails before any work if the scene files would clash with files already in ``out``."""
    from .scene import scene_files

    clash = next((out / rel for rel in [*scene_files(rig.names), RIG_PLOT_FILE] if (out / rel).exists()), None)
    if clash is not None:
        raise CommandError(f"{clash} already exists; choose another --out folder (existing files are never replaced)")


def reference_view_index(rig, view: str) -> int:
    """``--video-view``: a camera's index in the rig (0 = the first) or its name (cam01, ...)."""
    if view in rig.names:
        return rig.names.index(view)
    try:
        index = int(view)
    except ValueError:
        index = -1
    if not 0 <= index < rig.num_views:
        raise CommandError(
            f"--video-view {view} is not a camera of the {rig.num_views}-view rig; give an index 0 to "
            f"{rig.num_views - 1} or a name ({', '.join(rig.names)})"
        )
    return index


def read_reference_video(path: str, num_frames: int, fps: float | None = None, start: float = 0.0):
    """The ``--video`` clip, read before any model loads: ``num_frames`` frames from ``start`` seconds, sampled at
    ``fps`` (None: every frame), upright (:func:`syncammaster.video.read_clip`; only those frames are decoded).

    Problems end in one line; a clip too short names the ``--frames`` values, the ``--video-fps`` that fit.
    """
    from .video import VideoTooShortError, fitting_frame_counts, read_clip

    if Path(path).is_dir():
        raise CommandError(f"--video {path} is a folder; give a video file (a scene's videos/camNN.mp4 works)")
    counts = fitting_frame_counts(num_frames)
    if not counts:
        raise CommandError(f"--frames {num_frames} with --video: a given video needs at least 5 frames (4k+1); "
                           "give --frames 5 or more")
    try:
        return read_clip(path, num_frames, fps, start)
    except VideoTooShortError as e:
        fixes = []
        counts = fitting_frame_counts(e.available)
        if counts:
            fixes.append(f"--frames {' or '.join(str(n) for n in counts[-3:])} (4k+1 counts that fit)")
        if e.fitting_fps is not None:
            fixes.append(f"--video-fps {e.fitting_fps:g} ({num_frames} frames closer together)")
        if start > 0:
            fixes.append("an earlier --video-start")
        fixes.append("a longer video")
        fix = fixes[0] if len(fixes) == 1 else f"{', '.join(fixes[:-1])} or {fixes[-1]}"
        raise CommandError(f"--video {e}; give {fix}") from None


def generate_scene(pipe, args, prompt: str, rig, seed: int, negative_prompt: str | None = None, clip=None,
                   reference_view: int = 0, group=None):
    """One scene as ``syncammaster generate`` makes it: ``pipe`` called for ``prompt`` and ``rig`` with the
    ``generate`` flags ``args`` (--height, --width, --frames, --steps, --guidance-scale, --no-sync, --reference-mode,
    --fps, --wan), turned into a Scene.

    ``clip`` (from :func:`read_reference_video`) is camera ``reference_view``'s given video: the other views are
    generated around it, its frames set the frame count. Under a process ``group`` (:func:`join_processes`) every
    process shares the work; the group's first one gets the Scene, the others None.

    The written videos play at the rate their frames represent: ``--fps`` if given, else the given video's sampling
    rate, else the model's training rate.
    """
    reference_kwargs = {}
    if clip is not None:
        # The released checkpoint was trained text-only: it takes a given view only re-noised (training-free).
        mode = args.reference_mode or ("renoise" if args.wan is not None else "clean")
        reference_kwargs = {"reference_video": clip.frames, "reference_view": reference_view, "reference_mode": mode}
    result = pipe(
        prompt=prompt,
        rig=rig,
        negative_prompt=negative_prompt,
        height=args.height,
        width=args.width,
        num_frames=args.frames if clip is None else clip.frames.shape[0],
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        seed=seed,
        sync=not args.no_sync,
        output_type="np",
        process_group=group,
        **reference_kwargs,
    )
    if group is not None and group.rank() > 0:
        return None
    fps = args.fps or (clip.fps if clip is not None else pipe.config.default_fps)
    return generated_scene(pipe, result.videos[0], rig, prompt, fps)


def generated_scene(pipe, videos, rig, prompt: str, fps: float):
    """The Scene of one prompt's generated videos: V float arrays (T, H, W, 3) in [0, 1] (``output_type="np"``)
    become uint8, with the intrinsics of the model's training data."""
    import numpy as np

    from .scene import Scene

    videos = [(v * 255).round().clip(0, 255).astype(np.uint8) for v in videos]  # V x (T, H, W, 3)
    height, width = videos[0].shape[1:3]
    return Scene(videos=videos, rig=rig, intrinsics=pipe.training_intrinsics(width, height), prompt=prompt, fps=fps)


def draw_rig(rig, rig_name: str) -> bytes:
    """A scene folder's ``rig.png``: the rig's cameras drawn, titled with their number and ``rig_name``."""
    png = io.BytesIO()
    rig.plot(png, title=f"{rig.num_views} cameras: {rig_name}")
    return png.getvalue()


class BackgroundRigPlot:
    """:func:`draw_rig` in a child process started now, so that the drawing (importing matplotlib included) runs
    beside the model's imports and loading, which leave the other cores idle, instead of after the decoding.

    :meth:`png` waits for the child's bytes. Off Linux (where forking a process that has loaded system frameworks is
    not safe) no child is started, and where the child gave nothing (its drawing failed) :meth:`png` draws here: the
    bytes are the same either way, and so is an error. Start it before any thread pool (torch's) has run, as ``fork``
    copies only the calling thread.
    """

    def __init__(self, rig, rig_name: str):
        self._rig, self._rig_name = rig, rig_name
        self._process = self._receiver = None
        if sys.platform.startswith("linux"):
            context = multiprocessing.get_context("fork")
            self._receiver, sender = context.Pipe(duplex=False)
            self._process = context.Process(target=_send_rig_plot, args=(sender, rig, rig_name), daemon=True)
            self._process.start()
            sender.close()  # the child holds the only sending end: its exit ends the pipe

    def png(self) -> bytes:
        """The PNG's bytes (waiting for the child, if one is drawing)."""
        if self._process is not None:
            try:
                return self._receiver.recv_bytes()
            except EOFError:
                pass  # the child's drawing failed: draw here, so the error is raised in this process
            finally:
                self._receiver.close()
                self._process.join()
                self._process = None
        return draw_rig(self._rig, self._rig_name)

    def close(self) -> None:
        """Stops a child still drawing (the command failed before writing its scene); nothing once ``png`` ran."""
        if self._process is not None:
            self._process.terminate()
            self._process.join()
            self._receiver.close()
            self._process = None


def _send_rig_plot(sender, rig, rig_name: str) -> None:
    """The child of :class:`BackgroundRigPlot`: the drawing's bytes into ``sender``, or nothing on failure."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to report
    try:
        sender.send_bytes(draw_rig(rig, rig_name))
    except Exception:  # the parent draws again and reports the error in its own words
        pass
    finally:
        sender.close()


def write_generated_scene(scene, out: Path, rig_name: str, rig_plot: BackgroundRigPlot | None = None) -> Path:
    """Write a generated scene folder: the scene's files, ``grid.mp4`` and ``rig.png`` (titled with ``rig_name``;
    ``rig_plot``'s drawing where one was started)."""
    rig_png = rig_plot.png() if rig_plot is not None else draw_rig(scene.rig, rig_name)
    return scene.write(out, grid=True, extra_files={RIG_PLOT_FILE: rig_png})


def join_processes(args):
    """Under ``torchrun`` (``WORLD_SIZE`` > 1): joins the processes that share the sample and returns their group.

    Each process takes ``cuda:LOCAL_RANK`` (nccl) when there are GPUs, else the CPU (gloo); the processes other than
    rank 0 run quiet and write nothing. One process alone: ``None``.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import atexit

    import torch
    import torch.distributed as dist

    if args.device in (None, "cuda"):
        args.device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if torch.cuda.is_available() else "cpu"
    on_gpu = args.device.startswith("cuda")
    if on_gpu:
        torch.cuda.set_device(args.device)
    dist.init_process_group("nccl" if on_gpu else "gloo", device_id=torch.device(args.device) if on_gpu else None)
    atexit.register(dist.destroy_process_group)
    if dist.get_rank() > 0:
        args.quiet = True
    return dist.group.WORLD
