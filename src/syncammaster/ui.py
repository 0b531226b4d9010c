"""A web app to place the cameras, generate, and look at the N videos: the ``syncammaster ui`` command (Gradio).

The pipeline is loaded once when the app starts; generations run one at a time. Each one writes a scene folder (as
``syncammaster generate`` does) under the app's output folder, plus a zip of it for download. The page opens on
working defaults: a typed prompt and Generate give the preset's videos. Every field is checked here, before any work,
and every failure (a bad field, a camera file that does not parse, an unreadable video, an error while generating) is
one line in the page: under the Generate button, and under the camera view or the reference video when those cannot
be used. The app keeps serving.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np

from .app import CommandError, generated_scene, one_line, read_reference_video, write_generated_scene
from .cameras import CameraError, CameraRig, list_presets
from .inputs import InputError, frame_count, non_negative_int, positive_int, size
from .scene import GRID_FILE, SceneError, video_file

__all__ = ["FormError", "build_app", "check_installed", "rig_figure", "serve", "theme"]

logger = logging.getLogger(__name__)

DEFAULT_PRESET = "arc"
DEFAULT_STEPS = 50
# The app runs one generation at a time, so a bound keeps one request from holding the queue for hours.
MAX_STEPS = 200
# A browser's number field holds whole numbers exactly only up to 2**53 - 1.
MAX_SEED = 2**53 - 1
DEFAULT_FPS = 15.0
SCENE_PREFIX = "scene"
ALL_VIEWS = "all"
# Frustum length as a fraction of the farthest camera's distance from the middle of the drawing, and the smallest
# half side of the drawn cube (training units: 1 = 2 m).
FRUSTUM_FRACTION = 0.15
MIN_HALF_SIDE = 0.25
# Viewpoint of the rig drawing: from behind the cameras and above (as the CLI's rig.png, a little higher).
VIEW_AZIMUTH_DEG, VIEW_ELEVATION_DEG, VIEW_DISTANCE = -150.0, 25.0, 2.2
# matplotlib's default colour cycle, so the page and the scene's rig.png colour each camera alike.
CAMERA_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
                  "#17becf")


class FormError(ValueError):
    """A field of the form holds a value the app cannot use; the message names the field and the fix."""


BAD_INPUT = (CameraError, SceneError, CommandError, ValueError)


def _import_for_ui(module: str):
    """A module the web app needs (Gradio, plotly), or a one-line CommandError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise CommandError(f"the web app needs {module.split('.')[0]}: pip install 'syncammaster[ui]'") from None


def _gradio():
    return _import_for_ui("gradio")


# -- the form's fields -------------------------------------------------------------------------------------------


def _field(label: str, value, parse, default=None):
    """One field through ``parse``, the check the command line's flag uses too (:mod:`syncammaster.inputs`, so both say
    the same): empty -> ``default``; a bad value -> FormError naming the field."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a number field sends 3.0 for 3
    try:
        return parse(str(value).strip())
    except InputError as error:
        raise FormError(f"{label}: {error}") from None


def _views(value) -> int | None:
    """The Views field: empty or "all" -> None (every camera of the rig), else a whole number >= 1."""
    text = "" if value is None else str(value).strip()
    if text.lower() in ("", ALL_VIEWS):
        return None
    try:
        num_views = int(text)
    except ValueError:
        raise FormError(f"Views: expected {ALL_VIEWS!r} (or nothing) or a whole number, got {text!r}") from None
    if num_views < 1:
        raise FormError(f"Views: must be at least 1 (or {ALL_VIEWS!r}), got {num_views}")
    return num_views


def _uploaded(label: str, path: str, read):
    """``read(path)`` for a file uploaded to the field ``label``: a failure names the field and the file by its name,
    not by the folder Gradio keeps uploads in."""
    try:
        return read(path)
    except BAD_INPUT as error:
        message = one_line(error).replace(str(Path(path).parent) + os.sep, "")
        raise FormError(f"{label}: {message}") from None


def _rig_from_inputs(preset: str, views, rig_file: str | None) -> tuple[CameraRig, str]:
    """The rig the form describes and its name: an uploaded camera_extrinsics.json, else the preset."""
    num_views = _views(views)
    if rig_file:
        rig = _uploaded("Camera file", rig_file, lambda path: CameraRig.load(Path(path), num_views=num_views))
        return rig, Path(rig_file).name
    return CameraRig.preset(preset, num_views=num_views), preset


def _guidance(value, default: float) -> float:
    if value is None:
        return default
    guidance = float(value)
    if not math.isfinite(guidance) or guidance < 0:
        raise FormError(f"Guidance: must be a number >= 0 (1 or less: no guidance), got {value}")
    return guidance


def _in_range(label: str, value: int, maximum: int) -> int:
    if value > maximum:
        raise FormError(f"{label}: must be at most {maximum}, got {value}")
    return value


def _reference_view(value, num_views: int) -> int:
    view = _field("Its camera", value, non_negative_int, default=0)
    if view >= num_views:
        raise FormError(f"Its camera: the rig has cameras 0 to {num_views - 1}, got {view}")
    return view


def _markdown_text(text: str) -> str:
    """``text`` shown as it is in a Markdown component (punctuation escaped)."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!<>|~])", r"\\\1", text)


# -- the rig drawing -------------------------------------------------------------------------------------------


def _where_axes_meet(c2w: np.ndarray) -> np.ndarray:
    """(3,) the point nearest all cameras' optical axes (least squares), for a rig that does not know its subject;
    the cameras' mean centre when the axes are (nearly) parallel or meet behind the cameras.

    Args:
        c2w: (V, 4, 4) camera-to-world matrices.
    """
    centres = c2w[:, :3, 3]  # (V, 3)
    axes = c2w[:, :3, 2] / np.linalg.norm(c2w[:, :3, 2], axis=-1, keepdims=True)  # (V, 3) optical axes
    off_axis = np.eye(3) - axes[:, :, None] * axes[:, None, :]  # (V, 3, 3) projection onto each axis' normal plane
    a, b = off_axis.sum(0), np.einsum("vij,vj->i", off_axis, centres)
    if np.linalg.cond(a) < 1e6:
        point = np.linalg.solve(a, b)
        if (((point - centres) * axes).sum(-1) > 0).all():  # in front of every camera
            return point
    return centres.mean(0)


def rig_figure(rig: CameraRig, title: str):
    """An interactive 3-D plotly figure of the rig (rotate, zoom): each camera's frustum at frame 0 with its name
    (the image's top edge in black, a dotted line along its optical axis), a per-frame rig's centre paths dashed, and
    the subject, in equal axes: a cube centred on the subject (on the point nearest all optical axes when the rig does
    not know it)."""
    go = _import_for_ui("plotly.graph_objects")
    flip, axis_names = rig.display_frame()
    c2w = rig.c2w_at(0)  # (V, 4, 4)
    centres = c2w[:, :3, 3]  # (V, 3)
    if rig.subject is not None:
        middle, middle_name = rig.subject, "subject"
    else:
        middle, middle_name = _where_axes_meet(c2w), "where the optical axes meet"
    # The cube's half side: the farthest camera centre from the middle along any axis, and room for the frustums.
    paths = rig.c2w[..., :3, 3].reshape(-1, 3)  # (V [* T], 3) every camera centre
    reach = max(float(np.abs((paths - middle) @ flip.T).max()), MIN_HALF_SIDE)
    depth = FRUSTUM_FRACTION * reach
    half = reach + depth
    frustums = rig.frustum_corners(depth) @ flip.T  # (V, 4, 3) display coordinates
    apexes = centres @ flip.T  # (V, 3)

    def line(points, **style):
        """A Scatter3d of polylines; rows of NaN in ``points`` (N, 3) split it into pieces."""
        return go.Scatter3d(x=points[:, 0], y=points[:, 1], z=points[:, 2], mode="lines", showlegend=False,
                            hoverinfo="skip", **style)

    gap = np.full((1, 3), np.nan)
    traces = []
    for v, name in enumerate(rig.names):
        colour = CAMERA_COLOURS[v % len(CAMERA_COLOURS)]
        corners, apex = frustums[v], apexes[v][None]  # (4, 3), (1, 3)
        edges = np.concatenate([np.concatenate([apex, corner[None], gap]) for corner in corners])  # apex to corners
        outline = np.concatenate([corners, corners[:1]])  # (5, 3) closed image rectangle
        traces.append(line(np.concatenate([edges, outline]), line={"color": colour, "width": 4}, name=name))
        traces.append(line(corners[:2], line={"color": "black", "width": 8}, name=f"{name} top edge"))
        axis = c2w[v, :3, 2] / np.linalg.norm(c2w[v, :3, 2])
        along = max(float((middle - centres[v]) @ axis), depth)
        aim = np.stack([centres[v], centres[v] + along * axis]) @ flip.T  # (2, 3)
        traces.append(line(aim, line={"color": colour, "width": 2, "dash": "dot"}, name=f"{name} optical axis"))
        if not rig.is_static:
            path = rig.c2w[v, :, :3, 3] @ flip.T  # (T, 3)
            traces.append(line(path, line={"color": colour, "width": 2, "dash": "dash"}, name=f"{name} path"))
        x, y, z = apexes[v]
        traces.append(go.Scatter3d(x=[x], y=[y], z=[z], mode="markers+text", text=[name], textposition="top center",
                                   marker={"size": 3, "color": colour}, textfont={"color": colour}, name=name,
                                   showlegend=False, hovertemplate=f"{name}<br>(%{{x:.2f}}, %{{y:.2f}}, %{{z:.2f}})"
                                   "<extra></extra>"))
    x, y, z = middle @ flip.T
    traces.append(go.Scatter3d(x=[x], y=[y], z=[z], mode="markers", marker={"size": 6, "color": "red",
                               "symbol": "diamond"}, name=middle_name, hovertemplate=f"{middle_name}<extra></extra>"))

    azimuth, elevation = math.radians(VIEW_AZIMUTH_DEG), math.radians(VIEW_ELEVATION_DEG)
    eye = VIEW_DISTANCE * np.array([math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth),
                                    math.sin(elevation)])
    centre = middle @ flip.T
    scene = {
        f"{axis}axis": {"title": {"text": axis_name}, "range": [centre[i] - half, centre[i] + half]}
        for i, (axis, axis_name) in enumerate(zip("xyz", axis_names, strict=True))
    }
    layout = go.Layout(
        title={"text": title, "x": 0.5, "font": {"size": 14}, "subtitle": {"text": "drag to turn, scroll to zoom"}},
        scene={**scene, "aspectmode": "cube", "camera": {"eye": dict(zip("xyz", eye.tolist(), strict=True)),
                                                         "up": {"x": 0, "y": 0, "z": 1}}},
        legend={"x": 0.99, "xanchor": "right", "y": 0.98},
        margin={"l": 0, "r": 0, "t": 48, "b": 0},
        height=480,
        template="plotly_white",
        uirevision="rig",  # a redraw keeps the viewpoint the user turned to
    )
    return go.Figure(traces, layout)


def _rig_view(preset: str, views, rig_file: str | None):
    """The form's rig drawn (figure, "") or, for a rig that cannot be built, (None, its one-line message)."""
    try:
        rig, name = _rig_from_inputs(preset, views, rig_file)
    except BAD_INPUT as error:
        return None, f"**Cannot draw the cameras:** {_markdown_text(one_line(error))}"
    return rig_figure(rig, f"{rig.num_views} cameras: {name}"), ""


def _check_reference(path: str | None, num_frames: int, fps: float):
    """On upload: a reference video that cannot be used (``num_frames`` frames sampled at ``fps``) leaves the form at
    once (no broken player is left in the page), and the line under it says why: (None, the message); a usable one
    stays: (unchanged, "")."""
    gr = _gradio()
    if path:
        try:
            _uploaded("Reference video", path, lambda clip: read_reference_video(clip, num_frames, fps))
        except BAD_INPUT as error:
            return None, f"**Cannot use this video:** {_markdown_text(one_line(error))}"
    return gr.update(), ""


def _read_form(config, prompt, preset, views, rig_file, reference_video, reference_view, steps, guidance_scale, seed,
               sync, num_frames, height, width, reference_mode: str, fps: float = DEFAULT_FPS) -> tuple[str, dict]:
    """The form checked field by field in the order the page shows them: (the rig's name, the pipeline's arguments).

    Empty number fields take their defaults (the model's size and guidance, 50 steps, seed 0); a bad value raises a
    one-line FormError (or the rig's CameraError) naming the field and the fix.
    """
    if not prompt or not prompt.strip():
        raise FormError("Prompt: type a prompt, the caption of the scene to generate")
    rig, rig_name = _rig_from_inputs(preset, views, rig_file)
    num_frames = _field("Frames", num_frames, frame_count)
    reference = {}
    if reference_video:
        view = _reference_view(reference_view, rig.num_views)
        used = num_frames or config.default_num_frames
        clip = _uploaded("Reference video", reference_video, lambda path: read_reference_video(path, used, fps))
        reference = {"reference_video": clip.frames, "reference_view": view, "reference_mode": reference_mode}
    return rig_name, {
        "prompt": prompt.strip(),
        "rig": rig,
        "num_inference_steps": _in_range("Steps", _field("Steps", steps, positive_int, DEFAULT_STEPS), MAX_STEPS),
        "guidance_scale": _guidance(guidance_scale, config.default_guidance_scale),
        "seed": _in_range("Seed", _field("Seed", seed, non_negative_int, 0), MAX_SEED),
        "sync": bool(sync),
        "num_frames": num_frames,
        "height": _field("Height", height, size),
        "width": _field("Width", width, size),
        **reference,
    }


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
        A ``gradio.Blocks``; serve it with :func:`serve`.
    """
    gr = _gradio()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = pipe.config

    denoising_progress = gr.Progress()  # Gradio finds the progress bar by this default value

    def generate(prompt, preset, views, rig_file, reference_video, reference_view, steps, guidance_scale, seed, sync,
                 num_frames, height, width, progress=denoising_progress):
        unchanged = (gr.update(), gr.update(), gr.update())  # a failed try leaves the last videos in place
        try:
            # 1. Check the form before any work.
            rig_name, call = _read_form(config, prompt, preset, views, rig_file, reference_video, reference_view,
                                        steps, guidance_scale, seed, sync, num_frames, height, width, reference_mode,
                                        fps)
            steps, seed = call["num_inference_steps"], call["seed"]

            # 2. Generate, with a progress bar over the denoising steps.
            def on_step_end(_pipe, step, _timestep, tensors):
                progress((step + 1, steps), desc="denoising", unit="steps")
                return tensors

            progress((0, steps), desc="denoising", unit="steps")
            result = pipe(**call, output_type="np", callback_on_step_end=on_step_end)

            # 3. Write the scene folder as `syncammaster generate` does, and a zip of it.
            progress(1.0, desc="writing the videos")
            rig = call["rig"]
            scene = generated_scene(pipe, result.videos[0], rig, call["prompt"], fps)
            folder = write_generated_scene(scene, _new_scene_dir(out_dir, seed), rig_name=rig_name)
            archive = shutil.make_archive(str(folder), "zip", root_dir=folder.parent, base_dir=folder.name)
        except BAD_INPUT as error:
            return *unchanged, f"**Cannot generate:** {_markdown_text(one_line(error))}"
        except Exception as error:  # not the input's fault: the page says what failed, the server log says where
            logger.exception("generation failed")
            message = f"{type(error).__name__}: {one_line(error)}"
            return *unchanged, f"**Generation failed:** {_markdown_text(message)}"
        views_out = [(str(folder / video_file(name)), name) for name in rig.names]
        num_frames, height, width = scene.videos[0].shape[:3]
        summary = (f"{rig.num_views} views of {num_frames} frames at {width}x{height}, {steps} steps, seed {seed}; "
                   f"written to `{folder}`")
        return str(folder / GRID_FILE), views_out, archive, summary

    presets = list_presets()
    first_figure, _ = _rig_view(DEFAULT_PRESET, None, None)
    with gr.Blocks(title="SynCamMaster", analytics_enabled=False) as app:
        gr.Markdown("# SynCamMaster\nA prompt and a rig of cameras give one video per camera, of the same scene, "
                    "synchronized in time.")
        with gr.Row():
            with gr.Column(scale=1):
                prompt = gr.Textbox(label="Prompt", lines=2, placeholder="a red sphere bounces on a checkered floor")
                with gr.Row():
                    preset = gr.Dropdown(list(presets), value=DEFAULT_PRESET, label="Camera preset",
                                         info=presets[DEFAULT_PRESET])
                    views = gr.Textbox(value="", placeholder=ALL_VIEWS, label="Views", max_lines=1,
                                       info="empty or all: every camera of the rig (4 for arc, elevation, dolly, "
                                       "orbit); N: the first N")
                rig_file = gr.File(label="camera_extrinsics.json (replaces the preset)", file_types=[".json"],
                                   type="filepath", height=110, elem_id="rig-file")
                with gr.Accordion("Reference video (novel views of a given video)", open=False):
                    reference_video = gr.Video(label="Reference video", sources=["upload"], elem_id="reference-video")
                    reference_message = gr.Markdown(elem_id="reference-message")
                    reference_view = gr.Number(value=0, label="Its camera", info="index in the rig, from 0")
                with gr.Row():
                    steps = gr.Number(value=DEFAULT_STEPS, label="Steps", info=f"1 to {MAX_STEPS}")
                    guidance_scale = gr.Number(value=config.default_guidance_scale, label="Guidance",
                                               info="1 or less: none")
                with gr.Row():
                    seed = gr.Number(value=0, label="Seed", info="the same seed gives the same videos")
                    sync = gr.Checkbox(value=True, label="Sync views", info="off: views generated independently")
                with gr.Row():
                    num_frames = gr.Number(value=config.default_num_frames, label="Frames", info="4k+1")
                    height = gr.Number(value=config.default_height, label="Height", info="a multiple of 16")
                    width = gr.Number(value=config.default_width, label="Width", info="a multiple of 16")
                generate_button = gr.Button("Generate", variant="primary")
                status = gr.Markdown(elem_id="status")
            with gr.Column(scale=1):
                # No label: the figure's own title names the rig (Gradio would lay its label over the figure).
                rig_view = gr.Plot(value=first_figure, label="Cameras", show_label=False, elem_id="rig-view")
                rig_message = gr.Markdown(elem_id="rig-message")
                grid = gr.Video(label="All views", autoplay=True, loop=True, interactive=False)
        view_videos = gr.State([])

        @gr.render(inputs=view_videos)
        def show_views(videos):
            with gr.Row():
                for path, name in videos:
                    gr.Video(path, label=name, autoplay=True, loop=True, interactive=False, min_width=160)

        archive = gr.File(label="Scene folder (zip)", interactive=False)

        preset.change(lambda name: gr.update(info=presets[name]), preset, preset)
        gr.on([preset.change, views.submit, views.blur, rig_file.change], _rig_view, [preset, views, rig_file],
              [rig_view, rig_message])
        def check_reference(path):
            return _check_reference(path, config.default_num_frames, fps)

        reference_video.upload(check_reference, reference_video, [reference_video, reference_message])
        generate_button.click(
            generate,
            [prompt, preset, views, rig_file, reference_video, reference_view, steps, guidance_scale, seed, sync,
             num_frames, height, width],
            [grid, view_videos, archive, status],
            concurrency_limit=1,  # one pipeline: one generation at a time, the others wait in the queue
        )
    return app


def theme():
    """The app's look; system fonts only, so the page never waits on a font server (the app often runs offline)."""
    gr = _gradio()
    return gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def check_installed() -> None:
    """A one-line CommandError saying how to install them if the web app's libraries (Gradio, plotly) are missing."""
    _gradio()
    _import_for_ui("plotly.graph_objects")


def serve(app, out_dir: str | Path, host: str, port: int) -> None:
    """Serve ``app`` (from :func:`build_app`, writing to ``out_dir``) on ``host:port`` until interrupted; OSError
    when that address cannot be served on (the port is taken, the address is not this machine's)."""
    app.queue().launch(server_name=host, server_port=port, allowed_paths=[str(out_dir)], theme=theme(),
                       show_error=True)
