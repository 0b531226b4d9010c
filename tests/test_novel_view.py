"""Novel views of a given video: the pipeline's reference view, the sync stage's reference views, the CLI's --video."""

import numpy as np
import pytest
import torch
from diffusers import WanTransformer3DModel
from PIL import Image

from syncammaster import CameraRig, SynCamMasterTransformer3DModel
from syncammaster.cli import main
from syncammaster.encoding import resize_and_crop
from syncammaster.pipeline import reference_frames
from syncammaster.scene import Scene, read_video, write_video
from syncammaster.training import FlowMatchingModule
from syncammaster.training.stages import _load_sync_start

from tiny import CAPTIONS, tiny_pipeline
from videos import frame_numbers, make_video, numbered_frame

SIZE = {"height": 32, "width": 48, "num_frames": 9}


@pytest.fixture(scope="module")
def rig():
    return CameraRig.preset("arc", num_views=3)


def tiny_wan():
    torch.manual_seed(0)
    return WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=4,
                                 out_channels=4, text_dim=8, freq_dim=16, ffn_dim=24, num_layers=2)


def random_latents(groups, views):
    g = torch.Generator().manual_seed(groups * 10 + views)
    return {"latents": torch.randn(groups, views, 4, 2, 4, 6, generator=g),
            "prompt_embeds": torch.randn(groups, 5, 8, generator=g),
            "camera": torch.randn(groups, views, 2, 12, generator=g)}


def random_video(seed, frames=9, height=40, width=56):
    return np.random.default_rng(seed).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)


def smooth_video(seed, frames=13, height=40, width=64):
    """A video of smooth colour gradients drifting over time (H.264 keeps it within a few levels)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    phase = rng.uniform(0, 2 * np.pi, 3)
    frames_ = [np.stack([np.sin(3 * x + 2 * y + phase[c] + 0.2 * t) for c in range(3)], axis=-1)
               for t in range(frames)]
    return ((np.stack(frames_) + 1) * 127.5).round().astype(np.uint8)  # (T, H, W, 3)


def encoded(pipe, video):
    return pipe.prepare_reference(video, SIZE["height"], SIZE["width"], SIZE["num_frames"], torch.device("cpu"))[1]


@pytest.mark.parametrize("mode", ["clean", "renoise"])
def test_reference_latent_is_kept_bit_identical(pipe, rig, mode):
    video = random_video(0)
    latents = pipe(CAPTIONS[:2], rig, reference_video=video, reference_view=2, reference_mode=mode, seed=3,
                   num_inference_steps=3, output_type="latent", **SIZE).videos  # (2 * 3, C, F, h, w)
    reference = encoded(pipe, video)
    for row in (2, 5):  # view 2 of each prompt
        assert torch.equal(latents[row], reference)
    assert not torch.equal(latents[0], reference)


@pytest.mark.parametrize("mode", ["clean", "renoise"])
def test_generated_views_follow_the_reference(pipe, rig, mode):
    def generate(video, sync=True):
        return pipe(CAPTIONS[0], rig, reference_video=video, reference_view=1, reference_mode=mode, seed=5,
                    sync=sync, num_inference_steps=3, output_type="latent", **SIZE).videos

    first, second = generate(random_video(0)), generate(random_video(1))
    # Re-noised, the reference weighs little at the first steps' noise levels (sigma near 1 with shift 5).
    for view in (0, 2):
        assert (first[view] - second[view]).abs().max() > (1e-3 if mode == "clean" else 2e-5)
    # Without the multi-view module the other views cannot see the reference (only re-noising draws differ).
    if mode == "clean":
        torch.testing.assert_close(generate(random_video(0), sync=False)[0], generate(random_video(1), sync=False)[0])


def test_text_only_when_no_reference(pipe, rig):
    text_only = pipe(CAPTIONS[0], rig, seed=5, num_inference_steps=2, output_type="latent", **SIZE).videos
    given = pipe(CAPTIONS[0], rig, reference_video=random_video(0), seed=5, num_inference_steps=2,
                 output_type="latent", **SIZE).videos
    assert (text_only[1] - given[1]).abs().max() > 1e-3


def test_reference_view_of_the_output_is_the_resized_input(pipe, rig):
    video = random_video(2, frames=12, height=36, width=60)  # more frames, another size and aspect
    out = pipe(CAPTIONS[0], rig, reference_video=video, reference_view=0, seed=0, num_inference_steps=1,
               **SIZE).videos[0]  # (V, T, H, W, 3)
    pixels = pipe.prepare_reference(video, 32, 48, 9, torch.device("cpu"))[0]  # (3, T, H, W) in [-1, 1]
    expected = ((pixels.permute(1, 2, 3, 0) + 1) * 127.5).round().numpy()
    np.testing.assert_allclose(out[0] * 255, expected, atol=1e-3)
    assert out.shape == (3, 9, 32, 48, 3)


def test_reference_inputs_in_every_form(pipe):
    video = random_video(3)
    expected = reference_frames(video)
    as_float = video.astype(np.float32) / 255
    as_tensor = torch.from_numpy(as_float).permute(0, 3, 1, 2)  # (T, 3, H, W)
    as_pil = [Image.fromarray(frame) for frame in video]
    for given in (as_float, as_tensor, as_pil, torch.from_numpy(video)):
        np.testing.assert_array_equal(reference_frames(given), expected)


@pytest.mark.parametrize(
    ("given", "needle"),
    [
        (np.zeros((32, 48, 3), np.uint8), "single image"),
        (np.zeros((9, 32, 48), np.uint8), "shape"),
        (np.full((9, 32, 48, 3), np.nan, np.float32), "NaN"),
        (np.full((9, 32, 48, 3), 2.0, np.float32), r"\[0, 1\]"),
        ([], "empty"),
        (12, "file, frames or a tensor"),
        ("/no/such/video.mp4", "does not exist"),
    ],
)
def test_bad_reference_inputs(given, needle):
    with pytest.raises(ValueError, match=needle):
        reference_frames(given)


def test_bad_reference_arguments(pipe, rig):
    with pytest.raises(ValueError, match="fewer than the 9"):
        pipe(CAPTIONS[0], rig, reference_video=random_video(0, frames=6), num_inference_steps=1, **SIZE)
    with pytest.raises(ValueError, match="not a camera of the 3-view rig"):
        pipe(CAPTIONS[0], rig, reference_video=random_video(0), reference_view=3, num_inference_steps=1, **SIZE)
    with pytest.raises(ValueError, match="reference_mode"):
        pipe(CAPTIONS[0], rig, reference_video=random_video(0), reference_mode="copy", num_inference_steps=1, **SIZE)


# ---------------------------------------------------------------------- training


class Recorder(torch.nn.Module):
    """Runs a transformer and keeps what it was given."""

    def __init__(self, transformer):
        super().__init__()
        self.transformer = transformer
        self.calls = []

    def forward(self, hidden_states, timestep, *args, **kwargs):
        self.calls.append((hidden_states.detach().clone(), timestep.detach().clone()))
        return self.transformer(hidden_states, timestep, *args, **kwargs)


def test_reference_views_are_clean_at_timestep_zero_and_out_of_the_loss():
    batch = random_latents(4, 3)
    transformer = SynCamMasterTransformer3DModel.from_wan(tiny_wan())
    module = FlowMatchingModule(transformer, reference_view_prob=1.0)
    recorder = Recorder(transformer)
    module.transformer = recorder
    module.loss(batch, torch.Generator().manual_seed(0))
    noisy, timestep = recorder.calls[0]
    x0 = batch["latents"].flatten(0, 1)
    reference = (timestep == 0).view(4, 3)
    assert (reference.sum(1) == 1).all()  # one given view per group
    assert torch.equal(noisy[reference.flatten()], x0[reference.flatten()])
    assert not torch.equal(noisy[~reference.flatten()], x0[~reference.flatten()])

    # The loss ignores the given views: their prediction can be anything.
    class OffAtTimestepZero(torch.nn.Module):
        def __init__(self, offset):
            super().__init__()
            self.transformer, self.offset = transformer, offset

        def forward(self, hidden_states, t, *args, **kwargs):
            out = self.transformer(hidden_states, t, *args, **kwargs)[0]
            return (torch.where((t == 0).view(-1, 1, 1, 1, 1), out + self.offset, out),)

    def loss_with(offset):
        module.transformer = OffAtTimestepZero(offset)
        return module.loss(batch, torch.Generator().manual_seed(0)).item()

    with torch.no_grad():
        assert loss_with(100.0) == pytest.approx(loss_with(0.0), rel=1e-6)
    module.transformer = transformer

    # Without reference views the draws and the loss are those of a module without the option.
    plain, zero = FlowMatchingModule(transformer), FlowMatchingModule(transformer, reference_view_prob=0.0)
    with torch.no_grad():
        assert plain.loss(batch, torch.Generator().manual_seed(1)).item() == pytest.approx(
            zero.loss(batch, torch.Generator().manual_seed(1)).item(), rel=1e-6)
    with pytest.raises(ValueError, match="multi-view"):
        FlowMatchingModule(tiny_wan(), reference_view_prob=0.5)


def test_same_pose_copies_carry_the_given_view_into_every_view_at_view_0s_camera():
    batch = random_latents(4, 3)
    transformer = SynCamMasterTransformer3DModel.from_wan(tiny_wan())
    seen = []

    class Seen(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = transformer

        def forward(self, hidden_states, timestep, context, camera_embedding, **kwargs):
            seen.append((hidden_states.clone(), timestep.clone(), camera_embedding.clone()))
            return self.inner(hidden_states, timestep, context, camera_embedding=camera_embedding, **kwargs)

    module = FlowMatchingModule(transformer, reference_view_prob=1.0, same_pose_prob=1.0)
    module.transformer = Seen()
    with torch.no_grad():
        loss = module.loss(batch, torch.Generator().manual_seed(0))
    noisy, timestep, camera = seen[0]
    reference = (timestep == 0).view(4, 3).float().argmax(1)  # (B,)
    x0 = batch["latents"][torch.arange(4), reference]  # (B, C, F, h, w): the given views
    assert torch.equal(noisy.view(4, 3, *noisy.shape[1:])[torch.arange(4), reference], x0)
    assert torch.equal(camera.view(4, 3, 2, 12), batch["camera"][:, :1].expand(4, 3, 2, 12))

    # The loss is that of real-group training on the same copies made by hand (the copy draw comes last).
    copied = {**batch, "latents": x0.unsqueeze(1).expand(4, 3, *x0.shape[1:]),
              "camera": batch["camera"][:, :1].expand(4, 3, 2, 12)}
    by_hand = FlowMatchingModule(transformer, reference_view_prob=1.0)
    with torch.no_grad():
        assert loss.item() == pytest.approx(by_hand.loss(copied, torch.Generator().manual_seed(0)).item(), rel=1e-6)
        assert loss.item() != pytest.approx(by_hand.loss(batch, torch.Generator().manual_seed(0)).item(), rel=1e-3)
    with pytest.raises(ValueError, match="needs reference_view_prob"):
        FlowMatchingModule(transformer, same_pose_prob=0.5)


def test_sync_stage_fine_tunes_a_synchronized_model(tmp_path):
    trained = SynCamMasterTransformer3DModel.from_wan(tiny_wan())
    with torch.no_grad():
        for p in trained.mvs_parameters():
            p.add_(0.1)
    trained.save_pretrained(tmp_path / "synced")
    tiny_wan().save_pretrained(tmp_path / "wan")
    resumed = _load_sync_start(tmp_path / "synced")
    for a, b in zip(resumed.mvs_parameters(), trained.mvs_parameters(), strict=True):
        assert torch.equal(a, b)
    fresh = _load_sync_start(tmp_path / "wan")
    assert all(float(p.detach().abs().sum()) == 0 for p in fresh.blocks[0].cam_encoder.parameters())
    with pytest.raises(FileNotFoundError, match="holds no transformer"):
        _load_sync_start(tmp_path)


# ---------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "tiny"
    tiny_pipeline().save_pretrained(folder)
    return folder


def generate_argv(model_dir, out, *extra):
    return ["generate", "--prompt", CAPTIONS[0], "--rig", "arc", "--views", "3", "--frames", "9", "--height", "32",
            "--width", "48", "--steps", "1", "--out", str(out), "--model", str(model_dir), *extra]


def test_generate_from_a_video_writes_a_complete_scene(model_dir, tmp_path, capsys):
    source = tmp_path / "input.mp4"
    write_video(source, smooth_video(4))
    out = tmp_path / "scene"
    assert main(generate_argv(model_dir, out, "--video", str(source), "--video-view", "cam02")) == 0
    stdout = capsys.readouterr().out
    assert ("--video: seconds 0.00-0.53 of 0.87, 9 frames at 15 fps (every frame of the 15 fps video), 64x40; "
            "resized and centre-cropped to 48x32; it is camera cam02") in stdout
    scene = Scene.read(out)
    assert len(scene.videos) == 3 and (out / "grid.mp4").is_file()
    # The given camera's video is the input as resized (H.264 with subsampled colour, twice, on 48x32 frames: a few
    # levels); a generated view is not.
    expected = ((resize_and_crop(read_video(source)[:9], 32, 48).permute(0, 2, 3, 1) + 1) * 127.5).numpy()
    assert np.abs(scene.videos[1].astype(np.float64) - expected).mean() < 6.0
    assert np.abs(scene.videos[0].astype(np.float64) - expected).mean() > 20.0

    # A scene folder's video works as --video, its camera named by index.
    again = tmp_path / "again"
    assert main(generate_argv(model_dir, again, "--video", str(out / "videos/cam02.mp4"), "--video-view", "1")) == 0


def write_bytes(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make_input", "extra", "needle"),
    [
        (lambda d: d / "missing.mp4", [], "does not exist"),
        (lambda d: d, [], "is a folder"),
        (lambda d: write_bytes(d / "empty.mp4", b""), [], "empty or corrupt"),
        (lambda d: write_bytes(d / "corrupt.mp4", np.random.default_rng(0).bytes(4000)), [], "empty or corrupt"),
        (lambda d: Image.fromarray(random_video(0)[0]).save(d / "still.png") or d / "still.png", [], "still image"),
        (lambda d: write_video(d / "short.mp4", random_video(0, frames=5)) or d / "short.mp4", [],
         "short.mp4 gives 5 frames at 15 fps, fewer than the 9 asked; give --frames 5 (4k+1 counts that fit) or a "
         "longer video"),
        (lambda d: write_video(d / "ok.mp4", random_video(0)) or d / "ok.mp4", ["--video-view", "3"], "0 to 2"),
        (lambda d: write_video(d / "ok.mp4", random_video(0)) or d / "ok.mp4", ["--video-view", "cam9"], "0 to 2"),
    ],
)
def test_generate_refuses_bad_videos_and_keeps_the_folder(model_dir, tmp_path, capsys, make_input, extra, needle):
    source = make_input(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code = main(generate_argv(model_dir, out, "--video", str(source), *extra))
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]  # (progress bars may precede it)
    assert code == 1 and len(errors) == 1 and needle in errors[0], err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"


def test_video_flags_need_a_video(model_dir, tmp_path, capsys):
    assert main(generate_argv(model_dir, tmp_path / "o", "--video-view", "1")) == 1
    assert "need --video" in capsys.readouterr().err


def test_a_phone_clip_is_upright_sampled_at_the_model_rate_and_written_at_it(model_dir, tmp_path, capsys):
    """A portrait phone clip: 60 fps, stored 48x32 with a -90 degree display matrix (shown 32x48)."""
    picture = np.zeros((32, 48, 3), np.uint8)
    picture[:, :24] = 255  # stored: left half white; shown turned clockwise: top half white
    pictures = [np.maximum(picture, np.pad(numbered_frame(i), ((0, 16), (0, 0), (0, 0)))[:, :48]) for i in range(90)]
    source = make_video(tmp_path / "phone.mp4", pictures, fps=60, rotation=-90)
    out = tmp_path / "scene"
    assert main(generate_argv(model_dir, out, "--video", str(source), "--width", "32", "--height", "48")) == 0
    stdout = capsys.readouterr().out
    assert ("--video: seconds 0.00-0.53 of 1.50, 9 frames at 15 fps (every 4th frame of the 60 fps video), 32x48 "
            "(stored 48x32, turned 90 degrees clockwise); it is camera cam01") in stdout
    scene = Scene.read(out)
    assert scene.fps == 15  # the rate the frames represent, not the source's 60
    given = scene.videos[0].astype(float)  # (T, 48, 32, 3), upright
    assert given[:, :20].mean() > 200 and given[:, 28:].mean() < 60  # white on top, as the phone shows it

    # --video-fps and --video-start choose the rate and the stretch; the written videos follow the rate.
    again = tmp_path / "again"
    assert main(generate_argv(model_dir, again, "--video", str(source), "--video-fps", "30", "--video-start", "0.5",
                              "--width", "32", "--height", "48")) == 0
    assert "seconds 0.50-0.77 of 1.50, 9 frames at 30 fps (every 2nd frame" in capsys.readouterr().out
    assert Scene.read(again).fps == 30


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--frames", "17"], "gives 12 frames at 15 fps, fewer than the 17 asked; give --frames 5 or 9 (4k+1 counts "
         "that fit), --video-fps 20.9 (17 frames closer together) or a longer video"),
        (["--frames", "9", "--video-start", "0.4"], "gives 6 frames from 0.4 s at 15 fps, fewer than the 9 asked; "
         "give --frames 5 (4k+1 counts that fit), --video-fps 21.9 (9 frames closer together), an earlier "
         "--video-start or a longer video"),
        (["--frames", "1"], "--frames 1 with --video: a given video needs at least 5 frames (4k+1); give --frames 5"),
        (["--video-start", "2"], "the start 2 s is past the end of"),
    ],
)
def test_video_checks_run_before_the_model_loads_and_name_valid_values(model_dir, tmp_path, capsys, monkeypatch,
                                                                       extra, needle):
    source = make_video(tmp_path / "short.mp4", [numbered_frame(i) for i in range(24)], fps=30)  # 0.8 s at 30 fps
    monkeypatch.setattr("syncammaster.app.load_pipeline", lambda args: pytest.fail("the model was loaded"))
    code = main(generate_argv(model_dir, tmp_path / "out", "--video", str(source), *extra))
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "out").exists()


def test_the_hinted_values_are_accepted(model_dir, tmp_path, capsys):
    """The values the too-short hint names fit: --frames 9, or 17 frames at --video-fps 20.9."""
    source = make_video(tmp_path / "short.mp4", [numbered_frame(i) for i in range(24)], fps=30)
    from syncammaster.app import read_reference_video

    assert frame_numbers(read_reference_video(str(source), 9, 15.0).frames) == list(range(0, 18, 2))
    assert read_reference_video(str(source), 9, 21.9, start=0.4).frames.shape[0] == 9
    clip = read_reference_video(str(source), 17, 20.9)
    assert clip.frames.shape[0] == 17 and frame_numbers(clip.frames)[-1] <= 23
