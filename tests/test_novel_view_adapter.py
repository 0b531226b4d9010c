"""The novel-view LoRA of a model folder (``novel_view_lora/``): loaded by every load path, on for calls with a
reference video only, beside a user's own LoRAs; a damaged one is refused in one line."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from syncammaster import CameraRig, SynCamMasterPipeline
from syncammaster.lora import LORA_WEIGHT_NAME, NOVEL_VIEW_LORA_DIR, add_novel_view_adapter
from syncammaster.model_files import ModelFilesError
from syncammaster.pipeline import load_model_folder
from syncammaster.training.config import DEFAULT_LORA_TARGETS

from tiny import CAPTIONS, tiny_pipeline
from videos import SAME_VIDEO_LEVELS, mean_level_difference

SIZE = {"height": 32, "width": 48, "num_frames": 9}
RIG = CameraRig.preset("arc", num_views=3)
VIDEO = np.random.default_rng(0).integers(0, 256, (9, 40, 56, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(a model folder, the same model with a trained-looking novel-view adapter)."""
    root = tmp_path_factory.mktemp("models")
    pipe = tiny_pipeline()
    pipe.save_pretrained(root / "plain")
    add_novel_view_adapter(pipe.transformer, 4, DEFAULT_LORA_TARGETS)
    with torch.no_grad():  # up matrices start at zero; give them values, as training would
        for name, parameter in pipe.transformer.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.2, generator=torch.Generator().manual_seed(len(name)))
    pipe.save_pretrained(root / "adapted")
    return root / "plain", root / "adapted"


def load(folder, **kwargs):
    pipe = SynCamMasterPipeline.from_pretrained(folder, **kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe, **kwargs):
    return pipe(CAPTIONS[0], RIG, seed=1, num_inference_steps=2, output_type="latent", **SIZE, **kwargs).videos


def test_the_adapter_is_saved_beside_the_untouched_model(folders):
    plain, adapted = folders
    assert load_file(plain / "transformer/diffusion_pytorch_model.safetensors").keys() == load_file(
        adapted / "transformer/diffusion_pytorch_model.safetensors").keys()
    before = load_file(plain / "transformer/diffusion_pytorch_model.safetensors")
    after = load_file(adapted / "transformer/diffusion_pytorch_model.safetensors")
    assert all(torch.equal(before[key], after[key]) for key in before)
    lora = load_file(adapted / NOVEL_VIEW_LORA_DIR / LORA_WEIGHT_NAME)
    assert all(key.startswith("transformer.blocks.") and ".lora_" in key for key in lora)
    assert any(".attn1.to_q.lora_A" in key for key in lora) and any(".projector.lora_B" in key for key in lora)


def test_text_only_is_the_model_and_a_reference_call_uses_the_adapter(folders):
    plain, adapted = folders
    without, with_adapter = load(plain), load(adapted)
    assert with_adapter.has_novel_view_adapter and not without.has_novel_view_adapter
    assert torch.equal(generate(without), generate(with_adapter))  # bit-identical text-to-views

    given = generate(with_adapter, reference_video=VIDEO)
    assert not torch.allclose(given, generate(without, reference_video=VIDEO), atol=1e-3)
    assert torch.equal(generate(with_adapter, reference_video=VIDEO, novel_view_adapter=False),
                       generate(without, reference_video=VIDEO))
    # The same as loading the adapter file by hand with diffusers' LoRA loader.
    by_hand = load(plain)
    by_hand.load_lora_weights(adapted / NOVEL_VIEW_LORA_DIR, adapter_name="mine")
    assert torch.allclose(given, generate(by_hand, reference_video=VIDEO), atol=1e-6)
    # A text-only call after a reference call is the model again.
    assert torch.equal(generate(without), generate(with_adapter))
    assert not load(adapted, novel_view_adapter=False).has_novel_view_adapter
    assert load_model_folder(adapted).has_novel_view_adapter


def test_a_users_lora_works_beside_it(folders, tmp_path):
    plain, adapted = folders
    # A user's LoRA on the cross-attention (saved by the same diffusers machinery).
    source = tiny_pipeline()
    source.transformer.add_adapter(__import__("peft").LoraConfig(r=2, lora_alpha=2, target_modules=["attn2.to_q"]))
    with torch.no_grad():
        for name, parameter in source.transformer.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    from peft.utils import get_peft_model_state_dict

    SynCamMasterPipeline.save_lora_weights(tmp_path, get_peft_model_state_dict(source.transformer))

    def with_user_lora(folder):
        pipe = load(folder)
        pipe.load_lora_weights(tmp_path, adapter_name="user")
        pipe.set_adapters(["user"], [0.7])
        return pipe

    without, with_adapter = with_user_lora(plain), with_user_lora(adapted)
    assert torch.equal(generate(without), generate(with_adapter))
    assert not torch.allclose(generate(without), generate(load(plain)), atol=1e-3)  # the user's LoRA is on
    given = generate(with_adapter, reference_video=VIDEO)
    by_hand = with_user_lora(plain)
    by_hand.load_lora_weights(adapted / NOVEL_VIEW_LORA_DIR, adapter_name="mine")
    by_hand.set_adapters(["user", "mine"], [0.7, 1.0])
    assert torch.allclose(given, generate(by_hand, reference_video=VIDEO), atol=1e-6)
    assert with_adapter.get_active_adapters() == ["user", "novel_view"]
    generate(with_adapter)
    assert with_adapter.get_active_adapters() == ["user"]


@pytest.mark.slow  # four caches, each a fresh load
def test_step_caches_and_layerwise_casting_run_with_it(folders):
    from syncammaster.step_caches import STEP_CACHE_METHODS, step_cache_config

    plain, adapted = folders
    for name in STEP_CACHE_METHODS:
        pipe = load(adapted)
        transformer = pipe.transformer
        transformer.enable_cache(step_cache_config(name, None, lambda t=transformer: t.current_timestep))
        assert torch.isfinite(generate(pipe, reference_video=VIDEO)).all(), name
        assert torch.isfinite(generate(pipe)).all(), name
    pipe = load(adapted)
    pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)
    assert torch.isfinite(generate(pipe, reference_video=VIDEO)).all()


def copy_model(source, target):
    import shutil

    shutil.copytree(source, target)
    return target / NOVEL_VIEW_LORA_DIR / LORA_WEIGHT_NAME


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda f: f.write_bytes(b""), "is empty"),
        (lambda f: f.write_bytes(f.read_bytes()[:200]), "cut short or damaged"),
        (lambda f: f.unlink(), f"holds no {LORA_WEIGHT_NAME}"),
        (lambda f: save_file({"transformer.blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 7),
                              "transformer.blocks.0.attn1.to_q.lora_B.weight": torch.zeros(24, 4)}, f),
         "cannot load the novel-view adapter"),
        (lambda f: save_file({"something.else": torch.zeros(2)}, f), "novel-view adapter"),
    ],
)
def test_a_damaged_adapter_is_refused_in_one_line(folders, tmp_path, damage, needle):
    file = copy_model(folders[1], tmp_path / "model")
    damage(file)
    with pytest.raises(ModelFilesError, match=needle) as error:
        load_model_folder(tmp_path / "model")
    assert "\n" not in str(error.value) and NOVEL_VIEW_LORA_DIR in str(error.value)
    assert not load_model_folder(tmp_path / "model", novel_view_adapter=False).has_novel_view_adapter


def test_the_cli_flag_turns_it_off(folders, tmp_path, capsys):
    from syncammaster.cli import main

    plain, adapted = folders
    argv = ["generate", "--prompt", CAPTIONS[0], "--rig", "arc", "--views", "3", "--frames", "9", "--height", "32",
            "--width", "48", "--steps", "1"]
    video = tmp_path / "input.mp4"
    from syncammaster.scene import write_video

    write_video(video, VIDEO)
    for name, model, extra in [("plain", plain, []), ("off", adapted, ["--no-novel-view-adapter"]),
                               ("on", adapted, [])]:
        assert main([*argv, "--model", str(model), "--out", str(tmp_path / name), "--video", str(video),
                     "--seed", "0", *extra]) == 0
    from syncammaster.scene import Scene

    plain_scene, off, on = (Scene.read(tmp_path / name) for name in ("plain", "off", "on"))
    # Written videos, compared up to H.264 (tests/videos.py).
    assert mean_level_difference(plain_scene.videos, off.videos) < SAME_VIDEO_LEVELS
    assert mean_level_difference(plain_scene.videos[1], on.videos[1]) > SAME_VIDEO_LEVELS
    assert json.loads((folders[1] / "model_index.json").read_text())["_class_name"] == "SynCamMasterPipeline"


def test_a_run_without_a_given_video_does_not_load_it(folders, monkeypatch, tmp_path):
    """generate and --prompts load the adapter only for runs with a video (text-to-views does not use it)."""
    from syncammaster import app
    from syncammaster.cli import build_parser

    loaded = []
    monkeypatch.setattr(SynCamMasterPipeline, "load_novel_view_adapter",
                        lambda self, folder: loaded.append(folder) or False)
    argv = ["generate", "--prompt", CAPTIONS[0], "--out", "unused", "--model", str(folders[1])]
    args = build_parser(argv).parse_args(argv)
    app.load_pipeline(args, novel_view_adapter=False)
    assert loaded == []
    app.load_pipeline(args)
    assert loaded == [folders[1]]
    args = build_parser(argv).parse_args([*argv, "--no-novel-view-adapter"])
    app.load_pipeline(args)
    assert loaded == [folders[1]]

    # The command itself, text to views: the adapter is not loaded.
    from syncammaster.cli import main

    assert main(["generate", "--prompt", CAPTIONS[0], "--model", str(folders[1]), "--out", str(tmp_path / "t"),
                 "--rig", "arc", "--views", "3", "--frames", "5", "--height", "16", "--width", "32", "--steps", "1",
                 "--quiet"]) == 0
    assert loaded == [folders[1]]


def _split_worker(rank: int, store: str, folder: str, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        pipe = load(folder)
        torch.save(generate(pipe, reference_video=VIDEO, guidance_scale=1.0, process_group=dist.group.WORLD),
                   f"{out}{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two processes
def test_two_processes_give_the_single_process_videos_with_it(folders, tmp_path):
    import torch.multiprocessing as mp

    adapted = folders[1]
    mp.spawn(_split_worker, args=(str(tmp_path / "store"), str(adapted), str(tmp_path / "rank")), nprocs=2, join=True)
    single = generate(load(adapted), reference_video=VIDEO, guidance_scale=1.0)
    for rank in range(2):
        assert torch.allclose(torch.load(tmp_path / f"rank{rank}.pt", weights_only=True), single, atol=1e-5)
    assert not torch.allclose(single, generate(load(folders[0]), reference_video=VIDEO, guidance_scale=1.0),
                              atol=1e-3)
