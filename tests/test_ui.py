"""The web app: its form checks and its rig drawing (fast), then the page in a real browser (slow): headless Chromium
opens the page as served, types a prompt, clicks Generate and watches the videos play; each field's bad values show
their one-line message in the page and the app keeps serving.

The browser tests need Gradio, plotly, the ``playwright`` Python package and a Chromium binary (Debian's
``chromium``); where one is missing they are skipped with the reason.
"""

from __future__ import annotations

import math
import re
import shutil
import socket
import zipfile

import numpy as np
import pytest

from syncammaster.cameras import CameraRig
from syncammaster.scene import Scene, write_video

from tiny import tiny_pipeline

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
HEIGHT, WIDTH, NUM_FRAMES = 32, 48, 5
PROMPT = "a red sphere bounces on a checkered floor"
TIMEOUT_MS = 60_000
VIDEOS_PLAY = """n => {
    const videos = [...document.querySelectorAll('video')];
    return videos.length >= n && videos.every(v => v.currentSrc && (v.readyState >= 2 || v.duration > 0));
}"""
RIG_PLOT = "document.querySelector('#rig-view .js-plotly-plot')"
RIG_EYE = f"{RIG_PLOT}._fullLayout.scene._scene.getCamera().eye"  # where the 3-D view looks from now (live)
SYNCAMVIDEO_FILE = '{"frame0": {"cam01": "[1 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1] "}}'

# Each field's bad values as a user types them, with the line the page must show. Consecutive messages differ, so
# each one is known to come from its own try. Views and the camera file also stop the rig drawing (same message).
BAD_VALUES = {
    "Prompt": [("", "Prompt: type a prompt, the caption of the scene to generate")],
    "Views": [
        ("0", "Views: must be at least 1 (or 'all'), got 0"),
        ("2.5", "Views: expected 'all' (or nothing) or a whole number, got '2.5'"),
        ("some", "Views: expected 'all' (or nothing) or a whole number, got 'some'"),
        ("30", "an arc of 30 cameras 15 deg apart would wrap past 360 deg; use at most 24 views or the 'orbit' preset"),
    ],
    "Steps": [
        ("0", "Steps: must be >= 1, got 0"),
        ("201", "Steps: must be at most 200, got 201"),
        ("2.5", "Steps: expected a whole number, got '2.5'"),
    ],
    "Guidance": [
        ("-1", "Guidance: must be a number >= 0 (1 or less: no guidance), got -1"),
        ("-0.5", "Guidance: must be a number >= 0 (1 or less: no guidance), got -0.5"),
    ],
    "Seed": [
        ("-1", "Seed: must be >= 0, got -1"),
        ("1.5", "Seed: expected a whole number, got '1.5'"),
        (str(2**53), f"Seed: must be at most {2**53 - 1}, got {2**53}"),
    ],
    "Frames": [
        ("0", "Frames: must be >= 1, got 0"),
        ("6", "Frames: 6 is not of the form 4k+1; try 5 or 9"),
        ("4.5", "Frames: expected a whole number, got '4.5'"),
    ],
    "Height": [
        ("33", "Height: 33 is not a multiple of 16; try 32 or 48"),
        ("-16", "Height: must be >= 1, got -16"),
        ("32.5", "Height: expected a whole number, got '32.5'"),
    ],
    "Width": [
        ("50", "Width: 50 is not a multiple of 16; try 48 or 64"),
        ("0", "Width: must be >= 1, got 0"),
    ],
}
# Uploaded camera files that are not camera files: (file name, content, the line the page must show).
BAD_CAMERA_FILES = [
    ("notes.json", "cam01 looks at the sphere", "Camera file: camera file notes.json is not valid JSON"),
    ("list.json", "[1, 2, 3]", "Camera file: camera file list.json does not have the SynCamVideo structure"),
    ("short.json", '{"frame0": {"cam01": "[1 0 0 0] [0 1 0 0]"}}',
     "Camera file: camera cam01 at frame 0 in short.json is malformed"),
]


# -- the form and the drawing, without a browser -----------------------------------------------------------------


@pytest.fixture(scope="module")
def small_pipe():
    pipe = tiny_pipeline()
    pipe.register_to_config(default_height=HEIGHT, default_width=WIDTH, default_num_frames=NUM_FRAMES)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def served(small_pipe, tmp_path_factory) -> dict:
    """The form's values as the page is served: {label: value} of the app's input components."""
    pytest.importorskip("gradio", reason="Gradio is not installed (pip install -e '.[ui]')")
    pytest.importorskip("plotly", reason="plotly is not installed (pip install -e '.[ui]')")
    from syncammaster.ui import build_app

    app = build_app(small_pipe, tmp_path_factory.mktemp("served"))
    return {block.label: block.value for block in app.blocks.values() if getattr(block, "label", None) and
            hasattr(block, "value")}


def _form(values: dict, **changes) -> dict:
    """`_read_form`'s arguments from the page's values (by label), with ``changes`` by argument name."""
    arguments = {
        "prompt": values["Prompt"], "preset": values["Camera preset"], "views": values["Views"],
        "rig_file": values["camera_extrinsics.json (replaces the preset)"], "reference_video": None,
        "reference_view": values["Its camera"], "steps": values["Steps"], "guidance_scale": values["Guidance"],
        "seed": values["Seed"], "sync": values["Sync views"], "num_frames": values["Frames"],
        "height": values["Height"], "width": values["Width"], "reference_mode": "clean",
    }
    return {**arguments, **changes}


def _as_sent(text: str):
    """What a number field sends for ``text``: a JSON number (an int where it is whole), None when emptied."""
    if not text.strip():
        return None
    number = float(text)
    return int(text) if number.is_integer() and "." not in text else number


def test_the_page_as_served_is_a_valid_form(small_pipe, served):
    from syncammaster.ui import DEFAULT_STEPS, _read_form

    values = served
    rig_name, call = _read_form(small_pipe.config, **_form(values, prompt=PROMPT))
    assert rig_name == "arc" and call["rig"].names == ["cam01", "cam02", "cam03", "cam04"]  # Views empty: all
    assert (call["num_inference_steps"], call["seed"], call["sync"]) == (DEFAULT_STEPS, 0, True)
    assert (call["num_frames"], call["height"], call["width"]) == (NUM_FRAMES, HEIGHT, WIDTH)
    assert call["guidance_scale"] == small_pipe.config.default_guidance_scale
    for views, names in (("all", 4), (" ALL ", 4), ("2", 2)):
        assert _read_form(small_pipe.config, **_form(values, prompt=PROMPT, views=views))[1]["rig"].num_views == names
    # An emptied number field takes its default.
    emptied = _form(values, prompt=PROMPT, steps=None, guidance_scale=None, seed=None, num_frames=None, height=None,
                    width=None)
    call = _read_form(small_pipe.config, **emptied)[1]
    assert (call["num_inference_steps"], call["seed"], call["num_frames"], call["height"]) == (DEFAULT_STEPS, 0,
                                                                                              None, None)


@pytest.mark.parametrize("field", list(BAD_VALUES))
def test_each_bad_value_is_one_line_naming_its_field(small_pipe, served, field):
    from syncammaster.ui import _read_form

    values = served
    argument = {"Prompt": "prompt", "Views": "views", "Steps": "steps", "Guidance": "guidance_scale", "Seed": "seed",
                "Frames": "num_frames", "Height": "height", "Width": "width"}[field]
    typed_text = field in ("Prompt", "Views")
    tries = BAD_VALUES[field] + ([("  \n ", BAD_VALUES["Prompt"][0][1])] if field == "Prompt" else [])
    for text, message in tries:
        value = text if typed_text else _as_sent(text)
        with pytest.raises(ValueError) as caught:
            _read_form(small_pipe.config, **_form(values, **{"prompt": PROMPT, argument: value}))
        assert str(caught.value) == message and "\n" not in message


def test_bad_uploads_are_one_line_naming_the_file(small_pipe, served, tmp_path):
    from syncammaster.ui import _read_form

    values = served
    upload = tmp_path / "upload"  # as Gradio keeps uploads: a folder of its own, not named in the message
    upload.mkdir()
    for name, content, message in BAD_CAMERA_FILES:
        (upload / name).write_text(content)
        with pytest.raises(ValueError, match=f"^{message}"):
            _read_form(small_pipe.config, **_form(values, prompt=PROMPT, rig_file=str(upload / name)))
    (upload / "broken.mp4").write_bytes(b"not a video at all")
    with pytest.raises(ValueError, match="^Reference video: cannot decode video broken.mp4 "):
        _read_form(small_pipe.config, **_form(values, prompt=PROMPT, reference_video=str(upload / "broken.mp4")))


def test_a_failure_while_generating_is_one_line_in_the_page_and_writes_nothing(small_pipe, tmp_path, monkeypatch):
    pytest.importorskip("gradio", reason="Gradio is not installed (pip install -e '.[ui]')")
    pytest.importorskip("plotly", reason="plotly is not installed (pip install -e '.[ui]')")
    from syncammaster.ui import build_app

    out = tmp_path / "scenes"
    app = build_app(small_pipe, out)
    (generate,) = [function.fn for function in app.fns.values() if function.name == "generate"]
    values = {block.label: block.value for block in app.blocks.values() if getattr(block, "label", None) and
              hasattr(block, "value")}

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory.\nTried to allocate 2.00 GiB")

    monkeypatch.setattr(small_pipe.transformer, "forward", out_of_memory)  # fails inside the denoising loop
    form = _form(values, prompt=PROMPT)
    *_, status = generate(form["prompt"], form["preset"], form["views"], form["rig_file"], None,
                          form["reference_view"], form["steps"], form["guidance_scale"], form["seed"], form["sync"],
                          form["num_frames"], form["height"], form["width"])
    message = "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"  # one line, as the page shows it
    assert status.replace("\\", "") == f"**Generation failed:** {message}"
    assert list(out.iterdir()) == []


def _figure_cube(figure) -> tuple[np.ndarray, np.ndarray]:
    """(centre, side lengths) of the drawn x, y, z ranges."""
    ranges = np.array([getattr(figure.layout.scene, f"{axis}axis").range for axis in "xyz"])  # (3, 2)
    return ranges.mean(1), ranges[:, 1] - ranges[:, 0]


@pytest.mark.parametrize("preset, views", [("arc", None), ("syncamvideo", None), ("orbit", 7), ("dolly", 3)])
def test_the_rig_drawing_is_centred_on_the_subject_with_equal_axes(preset, views):
    pytest.importorskip("plotly", reason="plotly is not installed (pip install -e '.[ui]')")
    from syncammaster.ui import rig_figure

    rig = CameraRig.preset(preset, num_views=views)
    figure = rig_figure(rig, "title")
    flip, axis_names = rig.display_frame()
    centre, sides = _figure_cube(figure)
    np.testing.assert_allclose(centre, rig.subject @ flip.T, atol=1e-9)
    np.testing.assert_allclose(sides, sides[0])
    assert figure.layout.scene.aspectmode == "cube" and figure.layout.title.text == "title"
    assert [getattr(figure.layout.scene, f"{axis}axis").title.text for axis in "xyz"] == list(axis_names)
    # Every camera is drawn inside the cube, with its name beside it; the subject is marked.
    labels = [trace.text[0] for trace in figure.data if trace.mode == "markers+text"]
    assert labels == rig.names
    drawn = np.concatenate([np.stack([trace.x, trace.y, trace.z], -1) for trace in figure.data]).astype(float)
    drawn = drawn[~np.isnan(drawn).any(-1)]
    assert (np.abs(drawn - centre) <= sides[0] / 2 + 1e-9).all()
    assert [trace.name for trace in figure.data if trace.mode == "markers"] == ["subject"]


def test_a_camera_file_is_drawn_around_where_its_optical_axes_meet(tmp_path):
    pytest.importorskip("plotly", reason="plotly is not installed (pip install -e '.[ui]')")
    from syncammaster.ui import rig_figure

    known = CameraRig.preset("syncamvideo")
    path = tmp_path / "camera_extrinsics.json"
    known.to_syncamvideo_json(path)
    from_file = CameraRig.load(path)
    assert from_file.subject is None
    figure = rig_figure(from_file, "title")
    centre, _ = _figure_cube(figure)
    flip, _ = from_file.display_frame()
    # The SynCamVideo cameras all aim at the subject: the point nearest their axes is within a few centimetres of it.
    assert np.linalg.norm(centre - known.subject @ flip.T) < 0.05  # training units (1 = 2 m)
    assert [trace.name for trace in figure.data if trace.mode == "markers"] == ["where the optical axes meet"]

    # Cameras on one line of sight (a dolly) have no such point: the drawing is centred on their mean centre.
    CameraRig.preset("dolly").to_syncamvideo_json(path)
    dolly = CameraRig.load(path)
    centre, _ = _figure_cube(rig_figure(dolly, "title"))
    np.testing.assert_allclose(centre, dolly.c2w[:, :3, 3].mean(0) @ flip.T, atol=1e-9)


# -- the page in a browser ----------------------------------------------------------------------------------------


def _chromium_or_skip() -> str:
    pytest.importorskip("gradio", reason="Gradio is not installed (pip install -e '.[ui]')")
    pytest.importorskip("plotly", reason="plotly is not installed (pip install -e '.[ui]')")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is missing (pip install playwright)")
    executable = next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)
    if executable is None:
        pytest.skip(f"no Chromium binary on PATH ({', '.join(CHROMIUM_NAMES)}); install one: apt-get install chromium")
    return executable


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(small_pipe, tmp_path_factory):
    """The app around a tiny random pipeline (32x48, 5 frames by default), served on a free local port:
    (its address, its output folder)."""
    _chromium_or_skip()
    from syncammaster.ui import build_app, theme

    out = tmp_path_factory.mktemp("ui") / "scenes"
    app = build_app(small_pipe, out)
    port = _free_port()
    app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                       allowed_paths=[str(out)], theme=theme())
    try:
        yield f"http://127.0.0.1:{port}/", out
    finally:
        app.close()


@pytest.fixture(scope="module")
def browser(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium_or_skip(), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser):
    """A fresh page (its own browser context) for each test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()


def _scene_dirs(out) -> set:
    return {p for p in out.iterdir() if p.is_dir()} if out.is_dir() else set()


def _fill(page, label: str, value: str) -> None:
    """Type ``value`` into the field named ``label`` (a field's name may go on with its info line) and leave it."""
    field = page.get_by_label(re.compile(rf"^\s*{re.escape(label)}(\s|$)"))
    field.fill(value)
    field.press("Enter" if label != "Prompt" else "Tab")


def _generate(page) -> None:
    page.get_by_role("button", name="Generate", exact=True).click()


def _shows(page, selector: str, message: str) -> None:
    """Wait until the element shows ``message`` (a one-line text) and is visible."""
    from playwright.sync_api import expect

    expect(page.locator(selector)).to_contain_text(message, timeout=TIMEOUT_MS)
    expect(page.locator(selector)).to_be_visible()


BARE_ERRORS = """() => [...document.querySelectorAll('body *')]
    .filter(e => e.children.length === 0 && e.textContent.trim() === 'Error' && e.checkVisibility())
    .filter(e => { const toast = e.closest('[class*=toast-body]');
                   return !toast || toast.innerText.replace(/Error|\u00d7/g, '').trim() === ''; })
    .map(e => e.parentElement.outerHTML.slice(0, 200))"""


def _no_bare_error(page) -> None:
    """Every "Error" in the page comes with its message: no component shows Gradio's bare "Error" badge (a toast
    that says what went wrong is fine)."""
    assert page.evaluate(BARE_ERRORS) == []


def _plot_names(page) -> list[str]:
    return page.evaluate(f"{RIG_PLOT}.data.filter(t => t.mode === 'markers+text').map(t => t.text[0])")


def _plot_eye(page) -> list[float]:
    eye = page.evaluate(RIG_EYE)
    return [eye["x"], eye["y"], eye["z"]]


@pytest.mark.slow
def test_a_prompt_and_generate_on_the_page_as_served_play_the_videos(app_url, page, tmp_path):
    url, out = app_url
    before = _scene_dirs(out)
    page.goto(url)
    page.wait_for_function(f"{RIG_PLOT}?.data?.length > 0")
    assert _plot_names(page) == ["cam01", "cam02", "cam03", "cam04"]
    page.get_by_label("Prompt", exact=True).fill(PROMPT)
    _generate(page)

    # The grid and each of the arc's 4 views are loaded and playable in the browser.
    page.wait_for_function(VIDEOS_PLAY, arg=5)
    sources = page.eval_on_selector_all("video", "videos => videos.map(v => v.currentSrc)")
    assert [src.rsplit("/", 1)[-1] for src in sources] == ["grid.mp4", "cam01.mp4", "cam02.mp4", "cam03.mp4",
                                                          "cam04.mp4"]
    _shows(page, "#status", f"4 views of {NUM_FRAMES} frames at {WIDTH}x{HEIGHT}, 50 steps, seed 0")
    _no_bare_error(page)

    # The download is a zip of the scene folder as `syncammaster generate` writes it.
    (folder,) = _scene_dirs(out) - before
    assert page.locator("a[href$='.zip']").get_attribute("href").endswith(f"/{folder.name}.zip")
    with zipfile.ZipFile(out / f"{folder.name}.zip") as archive:
        archive.extractall(tmp_path / "unzipped")
    scene = Scene.read(tmp_path / "unzipped" / folder.name)
    assert scene.rig.names == ["cam01", "cam02", "cam03", "cam04"]
    assert scene.prompt == PROMPT
    assert scene.videos[0].shape == (NUM_FRAMES, HEIGHT, WIDTH, 3)
    assert (tmp_path / "unzipped" / folder.name / "grid.mp4").is_file()


@pytest.mark.slow
def test_the_rig_view_turns_zooms_and_follows_the_form(app_url, page, tmp_path):
    url, _ = app_url
    page.goto(url)
    page.wait_for_function(f"{RIG_PLOT}?.data?.length > 0")
    plot = page.locator("#rig-view .js-plotly-plot")
    box = plot.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    # Dragging turns the view; scrolling zooms it (the eye moves nearer the subject).
    eye = _plot_eye(page)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 120, y + 40, steps=8)
    page.mouse.up()
    turned = _plot_eye(page)
    assert not np.allclose(turned, eye)
    assert math.dist(turned, [0, 0, 0]) == pytest.approx(math.dist(eye, [0, 0, 0]), rel=0.05)
    page.mouse.wheel(0, -400)
    page.wait_for_function(f"d => Math.hypot(...Object.values({RIG_EYE})) < d", arg=0.9 * math.dist(turned, [0, 0, 0]))

    # It is redrawn as the views, the preset and the camera file change.
    _fill(page, "Views", "2")
    page.wait_for_function(f"{RIG_PLOT}.data.filter(t => t.mode === 'markers+text').length === 2")
    assert _plot_names(page) == ["cam01", "cam02"]
    page.get_by_label("Camera preset").click()
    page.get_by_role("option", name="orbit", exact=True).click()
    page.wait_for_function(f"{RIG_PLOT}.layout.title.text === '2 cameras: orbit'")
    rig = CameraRig.preset("syncamvideo").select(["cam02", "cam05", "cam07"])
    rig.to_syncamvideo_json(tmp_path / "three.json")
    page.locator("input[type=file]").first.set_input_files(str(tmp_path / "three.json"))
    page.wait_for_function(f"{RIG_PLOT}.layout.title.text === '2 cameras: three.json'")
    _fill(page, "Views", "all")
    page.wait_for_function(f"{RIG_PLOT}.layout.title.text === '3 cameras: three.json'")
    assert _plot_names(page) == ["cam02", "cam05", "cam07"]
    _no_bare_error(page)


@pytest.mark.slow
@pytest.mark.parametrize("field", list(BAD_VALUES))
def test_each_field_shows_its_bad_values_message_in_the_page(app_url, page, field):
    url, out = app_url
    before = _scene_dirs(out)
    page.goto(url)
    if field != "Prompt":
        _fill(page, "Prompt", PROMPT)
    for value, message in BAD_VALUES[field]:
        _fill(page, field, value)
        if field == "Views":  # the rig cannot be drawn either: said beside the drawing
            _shows(page, "#rig-message", f"Cannot draw the cameras: {message}")
        _generate(page)
        _shows(page, "#status", f"Cannot generate: {message}")
    _no_bare_error(page)
    assert _scene_dirs(out) == before  # a failed try writes nothing and the app keeps serving


@pytest.mark.slow
def test_a_bad_camera_file_shows_its_message_in_the_page(app_url, page, tmp_path):
    url, out = app_url
    before = _scene_dirs(out)
    page.goto(url)
    upload = page.locator("#rig-file input[type=file]")
    # A file that is not .json is refused by the upload field itself, with its own one-line message.
    (tmp_path / "cameras.txt").write_text(SYNCAMVIDEO_FILE)
    upload.set_input_files(str(tmp_path / "cameras.txt"))
    page.get_by_text("Invalid file type: cameras.txt. Only .json allowed.").wait_for()
    _fill(page, "Prompt", PROMPT)
    for name, content, message in BAD_CAMERA_FILES:
        (tmp_path / name).write_text(content)
        upload.set_input_files(str(tmp_path / name))
        _shows(page, "#rig-message", f"Cannot draw the cameras: {message}")
        _generate(page)
        _shows(page, "#status", f"Cannot generate: {message}")
        page.locator("#rig-file").get_by_role("button", name="Clear").click()  # as a user does before the next file
    _no_bare_error(page)
    assert _scene_dirs(out) == before


@pytest.mark.slow
def test_a_bad_reference_video_shows_its_message_in_the_page(app_url, page, tmp_path):
    url, out = app_url
    before = _scene_dirs(out)
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    write_video(tmp_path / "still.mp4", np.zeros((1, HEIGHT, WIDTH, 3), dtype=np.uint8))
    write_video(tmp_path / "given.mp4", np.zeros((NUM_FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8))
    page.goto(url)
    _fill(page, "Prompt", PROMPT)
    page.get_by_text("Reference video (novel views of a given video)").click()
    upload = page.locator("#reference-video input[type=file]")
    # A video that cannot be used leaves the form as it is uploaded, and the line under it says why.
    for name, message in [("broken.mp4", "Reference video: cannot decode video broken.mp4 "),
                          ("still.mp4", "Reference video: still.mp4 holds a single frame (a still image)")]:
        upload.set_input_files(str(tmp_path / name))
        _shows(page, "#reference-message", f"Cannot use this video: {message}")
        page.locator("#reference-video video").wait_for(state="detached")  # the field is empty again
    upload.set_input_files(str(tmp_path / "given.mp4"))
    page.locator("#reference-video video").wait_for()
    for value, message in [("4", "Its camera: the rig has cameras 0 to 3, got 4"),
                           ("-1", "Its camera: must be >= 0, got -1"),
                           ("0.5", "Its camera: expected a whole number, got '0.5'")]:
        _fill(page, "Its camera", value)
        _generate(page)
        _shows(page, "#status", f"Cannot generate: {message}")
    _no_bare_error(page)
    assert _scene_dirs(out) == before


@pytest.mark.slow
def test_a_reference_video_becomes_its_camera_view(app_url, page, tmp_path):
    url, out = app_url
    given = np.zeros((NUM_FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)  # (T, H, W, 3): a white square moving right
    for t in range(NUM_FRAMES):
        given[t, 8:24, 4 + 6 * t : 20 + 6 * t] = 255
    write_video(tmp_path / "given.mp4", given)
    before = _scene_dirs(out)
    page.goto(url)
    _fill(page, "Prompt", "a blue cube slides across a wooden floor")
    page.get_by_text("Reference video (novel views of a given video)").click()
    page.locator("#reference-video input[type=file]").set_input_files(str(tmp_path / "given.mp4"))
    _fill(page, "Its camera", "1")
    _generate(page)
    page.wait_for_function(VIDEOS_PLAY, arg=6)  # the reference, the grid and 4 views
    (folder,) = _scene_dirs(out) - before
    scene = Scene.read(folder)
    # Camera 1 shows the given video (twice through H.264: within a few grey levels); camera 0 was generated.
    assert np.abs(scene.videos[1].astype(float) - given).mean() < 4
    assert np.abs(scene.videos[0].astype(float) - given).mean() > 20
