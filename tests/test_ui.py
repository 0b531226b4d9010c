"""The web app in a real browser: headless Chromium types a prompt, clicks Generate and watches the videos play; bad
input shows a message in the page and the app keeps serving.

Needs Gradio, the ``playwright`` Python package and a Chromium binary (Debian's ``chromium``); where one is missing
the test is skipped with the reason.
"""

from __future__ import annotations

import shutil
import socket
import zipfile

import numpy as np
import pytest

from syncammaster.scene import Scene, write_video

from tiny import tiny_pipeline

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
HEIGHT, WIDTH, NUM_FRAMES = 32, 48, 5
TIMEOUT_MS = 60_000
VIDEOS_PLAY = """n => {
    const videos = [...document.querySelectorAll('video')];
    return videos.length >= n && videos.every(v => v.currentSrc && (v.readyState >= 2 || v.duration > 0));
}"""


def _chromium_or_skip() -> str:
    pytest.importorskip("gradio", reason="Gradio is not installed (pip install -e '.[ui]')")
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
def app_url(tmp_path_factory):
    """The app around a tiny random pipeline (32x48, 5 frames by default), served on a free local port:
    (its address, its output folder)."""
    _chromium_or_skip()
    from syncammaster.ui import build_app, theme

    pipe = tiny_pipeline()
    pipe.register_to_config(default_height=HEIGHT, default_width=WIDTH, default_num_frames=NUM_FRAMES)
    pipe.set_progress_bar_config(disable=True)
    out = tmp_path_factory.mktemp("ui") / "scenes"
    app = build_app(pipe, out)
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
    field = page.get_by_label(label, exact=True)
    field.fill(value)
    field.press("Enter")


def _generate(page, prompt: str, views: str, steps: str) -> None:
    page.get_by_label("Prompt", exact=True).fill(prompt)
    _fill(page, "Views", views)
    _fill(page, "number input for Steps", steps)
    page.get_by_role("button", name="Generate", exact=True).click()


def test_prompt_generate_and_the_videos_play(app_url, page, tmp_path):
    url, out = app_url
    before = _scene_dirs(out)
    page.goto(url)
    first_drawing = page.locator("#rig-view img").get_attribute("src")
    _generate(page, "a red sphere bounces on a checkered floor", views="3", steps="2")
    # The rig drawing follows the form before anything is generated.
    page.wait_for_function("src => document.querySelector('#rig-view img')?.src !== src", arg=first_drawing)

    # The grid and each view's video are loaded and playable in the browser.
    page.wait_for_function(VIDEOS_PLAY, arg=4)
    sources = page.eval_on_selector_all("video", "videos => videos.map(v => v.currentSrc)")
    assert [src.rsplit("/", 1)[-1] for src in sources] == ["grid.mp4", "cam01.mp4", "cam02.mp4", "cam03.mp4"]
    assert page.get_by_text("3 views of 5 frames at 48x32, 2 steps, seed 0").is_visible()

    # The download is a zip of the scene folder as `syncammaster generate` writes it.
    (folder,) = _scene_dirs(out) - before
    assert page.locator("a[href$='.zip']").get_attribute("href").endswith(f"/{folder.name}.zip")
    with zipfile.ZipFile(out / f"{folder.name}.zip") as archive:
        archive.extractall(tmp_path / "unzipped")
    scene = Scene.read(tmp_path / "unzipped" / folder.name)
    assert scene.rig.names == ["cam01", "cam02", "cam03"]
    assert scene.prompt == "a red sphere bounces on a checkered floor"
    assert scene.videos[0].shape == (NUM_FRAMES, HEIGHT, WIDTH, 3)
    assert (tmp_path / "unzipped" / folder.name / "grid.mp4").is_file()


def test_bad_input_shows_a_message_and_the_app_keeps_serving(app_url, page, tmp_path):
    url, out = app_url
    before = _scene_dirs(out)
    page.goto(url)
    _fill(page, "Height (x16)", "33")
    _generate(page, "a blue cube slides across a wooden floor", views="2", steps="1")
    page.get_by_text("`height`=33 is not a positive multiple of 16").wait_for()

    bad_rig = tmp_path / "camera_extrinsics.json"
    bad_rig.write_text('{"frame0": {"cam01": "[1 0 0 0] [0 1 0 0]"}}')
    page.locator("input[type=file]").first.set_input_files(str(bad_rig))
    page.get_by_text("camera cam01 at frame 0").first.wait_for()
    assert _scene_dirs(out) == before  # nothing written by a failed generation

    page.reload()
    page.get_by_text("Reference video (novel views of a given video)").click()
    unreadable = tmp_path / "broken.mp4"
    unreadable.write_bytes(b"not a video at all")
    page.locator("#reference-video input[type=file]").set_input_files(str(unreadable))
    _generate(page, "a blue cube slides across a wooden floor", views="2", steps="1")
    page.get_by_text("cannot decode video").wait_for()
    assert _scene_dirs(out) == before


def test_a_reference_video_becomes_its_camera_view(app_url, page, tmp_path):
    url, out = app_url
    given = np.zeros((NUM_FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)  # (T, H, W, 3): a white square moving right
    for t in range(NUM_FRAMES):
        given[t, 8:24, 4 + 6 * t : 20 + 6 * t] = 255
    write_video(tmp_path / "given.mp4", given)
    before = _scene_dirs(out)
    page.goto(url)
    page.get_by_text("Reference video (novel views of a given video)").click()
    page.locator("#reference-video input[type=file]").set_input_files(str(tmp_path / "given.mp4"))
    _fill(page, "Its camera (index in the rig)", "1")
    _generate(page, "a blue cube slides across a wooden floor", views="2", steps="1")
    page.wait_for_function(VIDEOS_PLAY, arg=3)
    (folder,) = _scene_dirs(out) - before
    scene = Scene.read(folder)
    # Camera 1 shows the given video (twice through H.264: within a few grey levels); camera 0 was generated.
    assert np.abs(scene.videos[1].astype(float) - given).mean() < 4
    assert np.abs(scene.videos[0].astype(float) - given).mean() > 20
