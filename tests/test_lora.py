import copy

import pytest
import torch
from safetensors.torch import save_file

from syncammaster.cli import main

from tiny import CAPTIONS, TEXT_DIM, tiny_pipeline

RANK = 2
NUM_VIEWS = 2
# Linears of the base Wan model and of the multi-view module, in diffusers names.
LAYERS = [
    "blocks.0.attn1.to_q",
    "blocks.1.attn2.to_out.0",
    "blocks.1.ffn.net.0.proj",
    "blocks.0.mvs_attn.to_k",
    "blocks.1.mvs_attn.to_out.0",
    "blocks.0.projector",
    "blocks.1.cam_encoder",
]
# The original Wan (released-code) name of each.
ORIGINAL = {
    "blocks.0.attn1.to_q": "blocks.0.self_attn.q",
    "blocks.1.attn2.to_out.0": "blocks.1.cross_attn.o",
    "blocks.1.ffn.net.0.proj": "blocks.1.ffn.0",
    "blocks.0.mvs_attn.to_k": "blocks.0.mvs_attn.k",
    "blocks.1.mvs_attn.to_out.0": "blocks.1.mvs_attn.o",
    "blocks.0.projector": "blocks.0.projector",
    "blocks.1.cam_encoder": "blocks.1.cam_encoder",
}


@pytest.fixture()
def pipe():
    pipeline = tiny_pipeline()
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def random_lora(transformer, layers, seed=0):
    """{layer: (A (r, in), B (out, r))} with entries large enough to move the output clearly."""
    generator = torch.Generator().manual_seed(seed)
    lora = {}
    for name in layers:
        linear = transformer.get_submodule(name)
        down = torch.randn(RANK, linear.in_features, generator=generator) * 0.3
        up = torch.randn(linear.out_features, RANK, generator=generator) * 0.3
        lora[name] = (down, up)
    return lora


def merged(transformer, lora, scale):
    """A copy of ``transformer`` with W + scale * B @ A written into each LoRA layer's weight."""
    model = copy.deepcopy(transformer)
    with torch.no_grad():
        for name, (down, up) in lora.items():
            model.get_submodule(name).weight += scale * up @ down
    return model


def forward(transformer):
    generator = torch.Generator().manual_seed(1)
    latents = torch.randn(NUM_VIEWS, 16, 3, 4, 6, generator=generator)
    text = torch.randn(NUM_VIEWS, 7, TEXT_DIM, generator=generator)
    cameras = torch.randn(NUM_VIEWS, 3, 12, generator=generator)
    with torch.no_grad():
        return transformer(latents, 500.0, text, camera_embedding=cameras, num_views=NUM_VIEWS).sample


def test_diffusers_keys_base_and_mvs_layers_scale_fuse_unfuse(pipe, tmp_path):
    transformer = pipe.transformer
    original = forward(transformer)
    lora = random_lora(transformer, LAYERS)
    keys = {}
    for name, (down, up) in lora.items():
        keys[f"transformer.{name}.lora_A.weight"] = down
        keys[f"transformer.{name}.lora_B.weight"] = up
    save_file(keys, tmp_path / "style.safetensors")
    full, half = forward(merged(transformer, lora, 1.0)), forward(merged(transformer, lora, 0.5))

    pipe.load_lora_weights(tmp_path / "style.safetensors", adapter_name="style")
    with_lora = forward(transformer)
    assert (with_lora - original).abs().max() > 1e-2
    torch.testing.assert_close(with_lora, full, rtol=1e-4, atol=1e-5)

    pipe.set_adapters("style", 0.5)
    torch.testing.assert_close(forward(transformer), half, rtol=1e-4, atol=1e-5)

    pipe.fuse_lora(lora_scale=1.0)
    torch.testing.assert_close(forward(transformer), half, rtol=1e-4, atol=1e-5)
    pipe.unfuse_lora()
    torch.testing.assert_close(forward(transformer), half, rtol=1e-4, atol=1e-5)  # back to the unfused adapter
    pipe.unload_lora_weights()
    torch.testing.assert_close(forward(transformer), original, rtol=0, atol=1e-6)


def test_original_wan_names_with_alpha_including_mvs_layers(pipe):
    transformer = pipe.transformer
    original = forward(transformer)
    lora = random_lora(transformer, LAYERS, seed=3)
    alpha = 4.0
    keys = {}
    for name, (down, up) in lora.items():
        keys[f"diffusion_model.{ORIGINAL[name]}.lora_down.weight"] = down
        keys[f"diffusion_model.{ORIGINAL[name]}.lora_up.weight"] = up
        keys[f"diffusion_model.{ORIGINAL[name]}.alpha"] = torch.tensor(alpha)
    expected = forward(merged(transformer, lora, alpha / RANK))
    pipe.load_lora_weights(keys, adapter_name="wan")
    assert (expected - original).abs().max() > 1e-2
    torch.testing.assert_close(forward(transformer), expected, rtol=1e-4, atol=1e-5)


def test_mvs_only_lora_in_original_names(pipe):
    transformer = pipe.transformer
    lora = random_lora(transformer, ["blocks.0.mvs_attn.to_k", "blocks.0.projector"], seed=4)
    keys = {}
    for name, (down, up) in lora.items():
        keys[f"diffusion_model.{ORIGINAL[name]}.lora_A.weight"] = down
        keys[f"diffusion_model.{ORIGINAL[name]}.lora_B.weight"] = up
    expected = forward(merged(transformer, lora, 1.0))
    pipe.load_lora_weights(keys)
    torch.testing.assert_close(forward(transformer), expected, rtol=1e-4, atol=1e-5)


def test_kohya_musubi_names(pipe, tmp_path):
    """kohya/musubi LoRAs hold every attention and FFN linear of every block; here with one MVS layer added."""
    transformer = pipe.transformer
    layers = [f"blocks.{i}.{attn}.{linear}" for i in range(2) for attn in ("attn1", "attn2")
              for linear in ("to_q", "to_k", "to_v", "to_out.0")]
    layers += [f"blocks.{i}.ffn.{linear}" for i in range(2) for linear in ("net.0.proj", "net.2")]
    layers += ["blocks.1.mvs_attn.to_v"]
    lora = random_lora(transformer, layers, seed=5)
    musubi = {"attn1": "self_attn", "attn2": "cross_attn", "mvs_attn": "mvs_attn", "to_q": "q", "to_k": "k",
              "to_v": "v", "to_out.0": "o", "ffn.net.0.proj": "ffn_0", "ffn.net.2": "ffn_2"}
    keys = {}
    for name, (down, up) in lora.items():
        block, rest = name.split(".", 2)[1], name.split(".", 2)[2]
        parts = [musubi[rest]] if rest in musubi else [musubi[p] for p in rest.split(".", 1)]
        prefix = f"lora_unet_blocks_{block}_{'_'.join(parts)}"
        keys[f"{prefix}.lora_down.weight"] = down
        keys[f"{prefix}.lora_up.weight"] = up
        keys[f"{prefix}.alpha"] = torch.tensor(float(RANK))
    save_file(keys, tmp_path / "musubi.safetensors")
    expected = forward(merged(transformer, lora, 1.0))
    pipe.load_lora_weights(str(tmp_path / "musubi.safetensors"))
    torch.testing.assert_close(forward(transformer), expected, rtol=1e-4, atol=1e-5)


def test_unsupported_original_key_is_named(pipe):
    transformer = pipe.transformer
    (down, up), = random_lora(transformer, ["blocks.0.projector"]).values()
    keys = {"diffusion_model.blocks.0.projector.lora_down.weight": down,
            "diffusion_model.blocks.0.projector.lora_up.weight": up,
            "diffusion_model.blocks.0.projector.diff_b": torch.zeros(up.shape[0])}
    with pytest.raises(ValueError, match="projector.diff_b is not supported"):
        pipe.load_lora_weights(keys)


def test_cli_lora_equals_merged_weights(tmp_path, capsys):
    pipe = tiny_pipeline()
    pipe.save_pretrained(tmp_path / "model")
    lora = random_lora(pipe.transformer, LAYERS, seed=6)
    save_file({f"transformer.{name}.lora_{ab}.weight": m for name, (down, up) in lora.items()
               for ab, m in (("A", down), ("B", up))}, tmp_path / "style.safetensors")
    pipe.transformer = merged(pipe.transformer, lora, 0.5)
    pipe.save_pretrained(tmp_path / "merged")
    common = ["generate", "--prompt", CAPTIONS[0], "--views", "2", "--frames", "5", "--height", "32", "--width", "32",
              "--steps", "2", "--quiet"]
    assert main([*common, "--model", str(tmp_path / "model"), "--lora", f"{tmp_path / 'style.safetensors'}:0.5",
                 "--out", str(tmp_path / "with_lora")]) == 0
    assert main([*common, "--model", str(tmp_path / "merged"), "--out", str(tmp_path / "merged_out")]) == 0
    assert main([*common, "--model", str(tmp_path / "model"), "--out", str(tmp_path / "plain")]) == 0
    from syncammaster.scene import Scene

    with_lora, by_hand, plain = (Scene.read(tmp_path / name) for name in ("with_lora", "merged_out", "plain"))
    for a, b, c in zip(with_lora.videos, by_hand.videos, plain.videos, strict=True):
        assert abs(a.astype(int) - b.astype(int)).max() <= 2  # video coding rounds
        assert abs(a.astype(int) - c.astype(int)).max() > 10
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([*common, "--lora", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "LoRA file not found" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_attention_kwargs_scale_the_lora(pipe, tmp_path):
    """diffusers' ``attention_kwargs={"scale": s}`` scales the loaded LoRA for one forward, or for one pipeline call."""
    transformer = pipe.transformer
    lora = random_lora(transformer, LAYERS, seed=7)
    half_merged, full_merged = forward(merged(transformer, lora, 0.5)), forward(merged(transformer, lora, 1.0))
    pipe.load_lora_weights({f"transformer.{name}.lora_{ab}.weight": m for name, (down, up) in lora.items()
                            for ab, m in (("A", down), ("B", up))}, adapter_name="style")
    generator = torch.Generator().manual_seed(1)
    latents = torch.randn(NUM_VIEWS, 16, 3, 4, 6, generator=generator)
    text = torch.randn(NUM_VIEWS, 7, TEXT_DIM, generator=generator)
    cameras = torch.randn(NUM_VIEWS, 3, 12, generator=generator)
    with torch.no_grad():
        half = transformer(latents, 500.0, text, camera_embedding=cameras, num_views=NUM_VIEWS,
                           attention_kwargs={"scale": 0.5}).sample
    torch.testing.assert_close(half, half_merged, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(forward(transformer), full_merged, rtol=1e-4, atol=1e-5)  # the scale was for one call

    from syncammaster import CameraRig

    call = {"prompt": CAPTIONS[0], "rig": CameraRig.preset("arc", num_views=NUM_VIEWS), "height": 32, "width": 48,
            "num_frames": 9, "num_inference_steps": 2, "seed": 0, "output_type": "latent"}
    unscaled = pipe(**call, attention_kwargs={"scale": 0.0}).frames
    with_lora = pipe(**call).frames
    pipe.unload_lora_weights()
    torch.testing.assert_close(unscaled, pipe(**call).frames, rtol=0, atol=1e-6)
    assert (with_lora - unscaled).abs().max() > 1e-3
