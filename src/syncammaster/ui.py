"""A web app to place the cameras, generate, and look at the N videos: the ``syncammaster ui`` command (Gradio).

The pipeline is loaded once when the app starts; generations run one at a time. Each one writes a scene folder (as
``syncammaster generate`` does) under the app's output folder, plus a zip of it for download. Bad input (a camera file
that does not parse, a size the model cannot take, an unreadable video) is shown in the page and the app keeps
serving.
"""

from __future__ import annotations

import argparse
import importlib
import io
import shutil
import tempfile
from pathlib import Path

from PIL import Image

from .argtypes import positive_int
from .cameras import CameraError, CameraRig, list_presets
from .cli import (
    CommandError,
    _load_pipeline,
    _one_line,
    _read_reference_video,
    generated_scene,
    write_generated_scene,
)
from .scene import GRID_FILE, SceneError, video_file

__all__ = ["add_ui_arguments", "build_app", "rig_image", "run_ui", "theme"]

DEFAULT_PRESET = "arc"
DEFAULT_STEPS = 50
MAX_STEPS = 200
DEFAULT_FPS = 15.0
SCENE_PREFIX = "scene"
BAD_INPUT = (CameraError, SceneError, CommandError, ValueError)


def _gradio():
    """The gradio module, or a one-line CommandError saying how to install it."""
    try:
        return importlib.import_module("gradio")
    except ImportError:
        raise CommandError("the web app needs Gradio: pip install 'syncammaster[ui]'") from None


def _rig_from_inputs(preset: str, views: float | None, rig_file: str | None) -> tuple[CameraRig, str]:
    """The rig the form describes and its name: an uploaded camera_extrinsics.json, else the preset."""
    num_views = None if views in (None, "") else int(views)
    if num_views is not None and num_views < 1:
        raise CameraError(f"the number of views must be at least 1, got {num_views}")
    if rig_file:
        return CameraRig.load(Path(rig_file), num_views=num_views), Path(rig_file).name
    return CameraRig.preset(preset, num_views=num_views), preset


def rig_image(preset: str, views: float | None, rig_file: str | None) -> Image.Image:
    """The 3D drawing of the rig's camera frusta (``CameraRig.plot``); gr.Error for a rig that cannot be built."""
    gr = _gradio()
    try:
        rig, name = _rig_from_inputs(preset, views, rig_file)
    except BAD_INPUT as error:
        raise gr.Error(_one_line(error), print_exception=False) from None
    png = io.BytesIO()
    rig.plot(png, title=f"{rig.num_views} cameras: {name}")
    return Image.open(png)


def _new_scene_dir(out_dir: Path, seed: int) -> Path:
    """A scene folder name not yet used in ``out_dir``: scene001-seed0, scene002-seed7, ..."""
    index = 1 + sum(1 for p in out_dir.glob(f"{SCENE_PREFIX}*") if p.is_dir())
    while any(out_dir.glob(f"{SCENE_PREFIX}{index:03d}-*")):
        index += 1
    return out_dir / f"{SCENE_PREFIX}{index:03d}-seed{seed}"


def build_app(pipe, out_dir: str | Path, reference_mode: str = "clean", fps: float = DEFAULT_FPS):
    """The app around a loaded pipeline; scene folders and their zips go to ``out_dir`` (created if needed).

    Args:
        pipe: a ``SynCamMasterPipeline``, already on its device.
        out_dir: where each generation's scene folder and zip are written.
        reference_mode: how a given reference video enters the denoising ("clean" for models fine-tuned for novel
            views, such as the shipped one; "renoise" for text-only models such as the released checkpoint).
        fps: frame rate of the written videos.

    Returns:
        A ``gradio.Blocks``; serve it with ``.queue().launch(...)`` and :func:`theme` (as :func:`run_ui` does).
    """
    gr = _gradio()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = pipe.config

    denoising_progress = gr.Progress()  # Gradio finds the progress bar by this default value

    def generate(prompt, preset, views, rig_file, reference_video, reference_view, steps, guidance_scale, seed, sync,
                 num_frames, height, width, progress=denoising_progress):
        # 1. Check the form before any work.
        if not prompt or not prompt.strip():
            raise gr.Error("Type a prompt: the caption of the scene to generate.", print_exception=False)
        try:
            rig, rig_name = _rig_from_inputs(preset, views, rig_file)
            reference_kwargs = {}
            if reference_video:
                view = int(reference_view or 0)
                if not 0 <= view < rig.num_views:
                    raise CommandError(f"the reference camera {view} is not in the {rig.num_views}-view rig; "
                                       f"give an index 0 to {rig.num_views - 1}")
                clip = _read_reference_video(reference_video, int(num_frames or config.default_num_frames), fps)
                reference_kwargs = {"reference_video": clip.frames,
                                    "reference_view": view, "reference_mode": reference_mode}
            steps, seed = int(steps), int(seed or 0)  # an emptied seed field is seed 0

            # 2. Generate, with a progress bar over the denoising steps.
            def on_step_end(_pipe, step, _timestep, tensors):
                progress((step + 1, steps), desc="denoising", unit="steps")
                return tensors

            progress((0, steps), desc="denoising", unit="steps")
            result = pipe(
                prompt=prompt.strip(),
                rig=rig,
                height=None if height is None else int(height),
                width=None if width is None else int(width),
                num_frames=None if num_frames is None else int(num_frames),
                num_inference_steps=steps,
                guidance_scale=None if guidance_scale is None else float(guidance_scale),
                seed=seed,
                sync=bool(sync),
                output_type="np",
                callback_on_step_end=on_step_end,
                **reference_kwargs,
            )

            # 3. Write the scene folder as `syncammaster generate` does, and a zip of it.
            progress(1.0, desc="writing the videos")
            scene = generated_scene(pipe, result.videos[0], rig, prompt.strip(), fps)
            folder = write_generated_scene(scene, _new_scene_dir(out_dir, seed), rig_name=rig_name)
        except BAD_INPUT as error:
            raise gr.Error(_one_line(error), print_exception=False) from None
        archive = shutil.make_archive(str(folder), "zip", root_dir=folder.parent, base_dir=folder.name)
        views_out = [(str(folder / video_file(name)), name) for name in rig.names]
        num_frames, height, width = scene.videos[0].shape[:3]
        summary = (f"{rig.num_views} views of {num_frames} frames at {width}x{height}, {steps} steps, seed {seed}; "
                   f"written to `{folder}`")
        return str(folder / GRID_FILE), views_out, archive, summary

    presets = list_presets()
    with gr.Blocks(title="SynCamMaster", analytics_enabled=False) as app:
        gr.Markdown("# SynCamMaster\nA prompt and a rig of cameras give one video per camera, of the same scene, "
                    "synchronized in time.")
        with gr.Row():
            with gr.Column(scale=1):
                prompt = gr.Textbox(label="Prompt", lines=2, placeholder="a red sphere bounces on a checkered floor")
                with gr.Row():
                    preset = gr.Dropdown(list(presets), value=DEFAULT_PRESET, label="Camera preset",
                                         info=presets[DEFAULT_PRESET])
                    views = gr.Number(value=None, precision=0, minimum=1, label="Views",
                                      info="empty: all cameras of the rig (4 for arc, elevation, dolly, orbit)")
                rig_file = gr.File(label="camera_extrinsics.json (replaces the preset)", file_types=[".json"],
                                   type="filepath", height=110)
                with gr.Accordion("Reference video (novel views of a given video)", open=False):
                    reference_video = gr.Video(label="Reference video", sources=["upload"], elem_id="reference-video")
                    reference_view = gr.Number(value=0, precision=0, minimum=0, label="Its camera (index in the rig)")
                with gr.Row():
                    steps = gr.Slider(1, MAX_STEPS, value=DEFAULT_STEPS, step=1, label="Steps")
                    guidance_scale = gr.Number(value=config.default_guidance_scale, label="Guidance")
                with gr.Row():
                    seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
                    sync = gr.Checkbox(value=True, label="Sync views", info="off: views generated independently")
                with gr.Row():
                    num_frames = gr.Number(value=config.default_num_frames, precision=0, label="Frames (4k+1)")
                    height = gr.Number(value=config.default_height, precision=0, label="Height (x16)")
                    width = gr.Number(value=config.default_width, precision=0, label="Width (x16)")
                generate_button = gr.Button("Generate", variant="primary")
            with gr.Column(scale=1):
                rig_view = gr.Image(value=rig_image(DEFAULT_PRESET, None, None), label="Cameras", type="pil",
                                    interactive=False, elem_id="rig-view")
                summary = gr.Markdown()
                grid = gr.Video(label="All views", autoplay=True, loop=True, interactive=False)
        view_videos = gr.State([])

        @gr.render(inputs=view_videos)
        def show_views(videos):
            with gr.Row():
                for path, name in videos:
                    gr.Video(path, label=name, autoplay=True, loop=True, interactive=False, min_width=160)

        archive = gr.File(label="Scene folder (zip)", interactive=False)

        preset.change(lambda name: gr.update(info=presets[name]), preset, preset)
        for component in (preset, views, rig_file):
            component.change(rig_image, [preset, views, rig_file], rig_view)
        generate_button.click(
            generate,
            [prompt, preset, views, rig_file, reference_video, reference_view, steps, guidance_scale, seed, sync,
             num_frames, height, width],
            [grid, view_videos, archive, summary],
            concurrency_limit=1,  # one pipeline: one generation at a time, the others wait in the queue
        )
    return app


def add_ui_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``syncammaster ui`` flags to ``parser``; :func:`run_ui` takes the parsed arguments."""
    parser.add_argument("--model", default=None,
                        help="SynCamMaster diffusers folder (default: the shipped small model)")
    parser.add_argument("--wan", default=None, help="Wan2.1-T2V diffusers folder, used with --checkpoint")
    parser.add_argument("--checkpoint", default=None, help="released SynCamMaster checkpoint (step20000.ckpt)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1; 0.0.0.0: all)")
    parser.add_argument("--port", type=positive_int, default=7860, help="port (default 7860)")
    parser.add_argument("--out", default=None,
                        help="folder for the generated scene folders and zips (default: a new temporary folder)")
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS, help="frame rate of the written videos (default 15)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--dtype", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                        help="model precision (default: bf16 on GPU, fp32 on CPU)")
    parser.add_argument("--cpu-offload", action="store_true", help="keep only the running model on the GPU")
    parser.add_argument("--vae-tiling", action="store_true", help="decode in tiles (less memory for large videos)")
    parser.add_argument("--vae-slicing", action="store_true", help="decode one view at a time (less memory, slower)")
    return parser


def theme():
    """The app's look; system fonts only, so the page never waits on a font server (the app often runs offline)."""
    gr = _gradio()
    return gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def run_ui(args: argparse.Namespace) -> None:
    """``syncammaster ui``: load the pipeline once, then serve the app until interrupted."""
    if args.fps <= 0:
        raise CommandError(f"--fps must be positive, got {args.fps}")
    _gradio()  # before the minutes of loading the model
    pipe = _load_pipeline(args)
    pipe.set_progress_bar_config(disable=True)
    out_dir = Path(args.out) if args.out is not None else Path(tempfile.mkdtemp(prefix="syncammaster-ui-"))
    # The released checkpoint was trained text-only: it takes a given view only re-noised (training-free).
    reference_mode = "renoise" if args.wan is not None else "clean"
    app = build_app(pipe, out_dir, reference_mode=reference_mode, fps=args.fps)
    print(f"scene folders go to {out_dir}/")
    try:
        app.queue().launch(server_name=args.host, server_port=args.port, allowed_paths=[str(out_dir)],
                           theme=theme(), show_error=True)
    except OSError:
        if args.out is None:  # the temporary folder made above holds nothing yet
            shutil.rmtree(out_dir, ignore_errors=True)
        raise CommandError(
            f"cannot serve on {args.host}:{args.port}: the port is in use or the address is not this machine's; "
            "pass another --port or --host"
        ) from None
