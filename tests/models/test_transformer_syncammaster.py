import pytest
import torch
from diffusers import WanTransformer3DModel

from syncammaster import SynCamMasterTransformer3DModel
from syncammaster.models.transformer_syncammaster import CheckpointError, to_official_state_dict

from reference_syncammaster import RefConfig, random_official_state_dict, reference_forward

CFG = RefConfig()


def tiny_wan(seed: int = 0) -> WanTransformer3DModel:
    torch.manual_seed(seed)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=CFG.num_heads,
        attention_head_dim=CFG.dim // CFG.num_heads,
        in_channels=CFG.in_channels,
        out_channels=CFG.out_channels,
        text_dim=CFG.text_dim,
        freq_dim=CFG.freq_dim,
        ffn_dim=CFG.ffn_dim,
        num_layers=CFG.num_layers,
        cross_attn_norm=True,
    ).eval()


def inputs(batch: int, views: int, frames: int, height: int, width: int, seed: int = 1, text_len: int = 7):
    g = torch.Generator().manual_seed(seed)
    bv = batch * views
    latents = torch.randn(bv, CFG.in_channels, frames, height, width, generator=g)
    context = torch.randn(batch, text_len, CFG.text_dim, generator=g).repeat_interleave(views, dim=0)
    camera = torch.randn(bv, frames, 12, generator=g)
    timestep = torch.full((bv,), 731.0)
    return latents, timestep, context, camera


def max_rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("views,frames,height,width", [(2, 3, 6, 10), (3, 1, 8, 4)])
def test_official_checkpoint_matches_reference_math(views, frames, height, width):
    state = random_official_state_dict(CFG, seed=3)
    model = SynCamMasterTransformer3DModel.from_official_checkpoint(state, num_attention_heads=CFG.num_heads)
    latents, timestep, context, camera = inputs(2, views, frames, height, width)
    with torch.no_grad():
        ours = model(latents, timestep, context, camera_embedding=camera, num_views=views).sample
        ref = reference_forward(state, CFG, latents, timestep, context, camera, views)
    assert ours.shape == latents.shape
    assert max_rel_err(ours, ref) < 1e-4


def test_official_checkpoint_from_file_and_export_round_trip(tmp_path):
    state = random_official_state_dict(CFG, seed=4)
    path = tmp_path / "step20000.ckpt"
    torch.save(state, path)
    model = SynCamMasterTransformer3DModel.from_official_checkpoint(path, num_attention_heads=CFG.num_heads)
    exported = to_official_state_dict(model)
    assert exported.keys() == state.keys()
    assert all(torch.equal(exported[k], state[k]) for k in state)


def test_official_checkpoint_errors_name_the_keys(tmp_path):
    state = random_official_state_dict(CFG)
    broken = dict(state)
    broken.pop("blocks.1.mvs_attn.q.weight")
    broken["blocks.0.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"blocks\.1\.mvs_attn\.q\.weight.*blocks\.0\.extra\.weight"):
        SynCamMasterTransformer3DModel.from_official_checkpoint(broken, num_attention_heads=CFG.num_heads)
    with pytest.raises(CheckpointError, match="not a multiple of 128"):
        SynCamMasterTransformer3DModel.from_official_checkpoint(state)
    with pytest.raises(CheckpointError, match="not found"):
        SynCamMasterTransformer3DModel.from_official_checkpoint(tmp_path / "nope.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        SynCamMasterTransformer3DModel.from_official_checkpoint(tmp_path / "junk.ckpt")


def test_fresh_mvs_equals_plain_wan():
    base = tiny_wan()
    model = SynCamMasterTransformer3DModel.from_wan(base).eval()
    latents, timestep, context, camera = inputs(1, 3, 3, 6, 10)
    with torch.no_grad():
        expected = base(latents, timestep, context).sample
        ours = model(latents, timestep, context, camera_embedding=camera, num_views=3).sample
        bypassed = model(latents, timestep, context, camera_embedding=None, num_views=3).sample
    assert (ours - expected).abs().max().item() <= 1e-6
    assert (bypassed - expected).abs().max().item() <= 1e-6
    # The copies are real copies, and the zero layers really are zero.
    block = model.blocks[0]
    assert torch.equal(block.mvs_attn.to_q.weight, block.attn1.to_q.weight)
    assert torch.equal(block.scale_shift_table_mvs, block.scale_shift_table[:, 0:3])
    assert block.projector.weight.abs().sum() == 0 and block.cam_encoder.weight.abs().sum() == 0


@pytest.mark.parametrize("views", [1, 2, 3, 5])
@pytest.mark.parametrize("frames", [1, 3])
@pytest.mark.parametrize("height,width", [(4, 6), (6, 2)])
def test_any_views_sizes_and_frames(views, frames, height, width):
    model = SynCamMasterTransformer3DModel.from_official_checkpoint(
        random_official_state_dict(CFG), num_attention_heads=CFG.num_heads
    )
    latents, timestep, context, camera = inputs(1, views, frames, height, width)
    with torch.no_grad():
        out = model(latents, timestep, context, camera_embedding=camera, num_views=views, return_dict=False)[0]
    assert out.shape == latents.shape
    assert torch.isfinite(out).all()


def test_views_are_not_mixed_across_prompts():
    model = SynCamMasterTransformer3DModel.from_official_checkpoint(
        random_official_state_dict(CFG), num_attention_heads=CFG.num_heads
    )
    views = 2
    latents, timestep, context, camera = inputs(2, views, 3, 4, 6)
    with torch.no_grad():
        out = model(latents, timestep, context, camera_embedding=camera, num_views=views).sample
        changed = latents.clone()
        changed[views:] = torch.randn_like(changed[views:])  # prompt 1's views only
        out_changed = model(changed, timestep, context, camera_embedding=camera, num_views=views).sample
        # ... while changing one view of prompt 0 does change its other view (the views do talk).
        other = latents.clone()
        other[1] = torch.randn_like(other[1])
        out_other = model(other, timestep, context, camera_embedding=camera, num_views=views).sample
    assert torch.equal(out[:views], out_changed[:views])
    assert not torch.allclose(out[0], out_other[0])


@pytest.mark.parametrize("timestep", [500.0, torch.tensor(500.0), torch.tensor([500.0]), torch.full((4,), 500.0)])
def test_timestep_forms(timestep):
    model = SynCamMasterTransformer3DModel.from_official_checkpoint(
        random_official_state_dict(CFG), num_attention_heads=CFG.num_heads
    )
    latents, _, context, camera = inputs(2, 2, 1, 4, 4)
    with torch.no_grad():
        out = model(latents, timestep, context, camera_embedding=camera, num_views=2).sample
        ref = model(latents, torch.full((4,), 500.0), context, camera_embedding=camera, num_views=2).sample
    assert torch.equal(out, ref)


def test_bad_shapes_are_named():
    model = SynCamMasterTransformer3DModel.from_official_checkpoint(
        random_official_state_dict(CFG), num_attention_heads=CFG.num_heads
    )
    latents, timestep, context, camera = inputs(1, 2, 3, 4, 4)
    with pytest.raises(ValueError, match="camera_embedding has shape"):
        model(latents, timestep, context, camera_embedding=camera[:, :2], num_views=2)
    with pytest.raises(ValueError, match="multiple of num_views"):
        model(latents, timestep, context, camera_embedding=camera, num_views=3)
    with pytest.raises(ValueError, match="channels"):
        model(latents[:, :2], timestep, context, camera_embedding=camera, num_views=2)


def test_save_pretrained_round_trip(tmp_path):
    model = SynCamMasterTransformer3DModel.from_official_checkpoint(
        random_official_state_dict(CFG), num_attention_heads=CFG.num_heads
    )
    model.save_pretrained(tmp_path / "transformer")
    assert (tmp_path / "transformer" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = SynCamMasterTransformer3DModel.from_pretrained(tmp_path / "transformer").eval()
    latents, timestep, context, camera = inputs(1, 2, 1, 4, 4)
    with torch.no_grad():
        a = model(latents, timestep, context, camera_embedding=camera, num_views=2).sample
        b = loaded(latents, timestep, context, camera_embedding=camera, num_views=2).sample
    assert torch.equal(a, b)


def test_mvs_parameters_and_gradient_checkpointing():
    model = SynCamMasterTransformer3DModel.from_wan(tiny_wan())
    mvs = model.mvs_parameters()
    names = [n for n, _ in model.named_mvs_parameters()]
    per_block = 2 + 2 + 1 + 10  # cam_encoder, projector, scale_shift_table_mvs, mvs_attn (4 linears + 2 norms)
    assert len(mvs) == len(names) == CFG.num_layers * per_block
    assert all(n.split(".")[2] in {"cam_encoder", "projector", "mvs_attn", "scale_shift_table_mvs"} for n in names)
    model.freeze_base()
    assert {id(p) for p in model.parameters() if p.requires_grad} == {id(p) for p in mvs}

    latents, timestep, context, camera = inputs(1, 2, 3, 4, 4)
    grads = []
    for checkpointing in (False, True):
        model.zero_grad()
        if checkpointing:
            model.enable_gradient_checkpointing()
        model.train()
        out = model(latents, timestep, context, camera_embedding=camera, num_views=2).sample
        out.square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in mvs]))
    # Zero-initialised projector: only it (and the layers after it) receive gradient at first.
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1])


def test_bfloat16_forward():
    model = SynCamMasterTransformer3DModel.from_official_checkpoint(
        random_official_state_dict(CFG), num_attention_heads=CFG.num_heads, torch_dtype=torch.bfloat16
    )
    latents, timestep, context, camera = inputs(1, 2, 1, 4, 4)
    with torch.no_grad():
        out = model(latents.bfloat16(), timestep, context.bfloat16(), camera_embedding=camera, num_views=2).sample
        ref = model.float()(latents, timestep, context, camera_embedding=camera, num_views=2).sample
    assert out.dtype == torch.bfloat16
    assert max_rel_err(out.float(), ref) < 0.1


@pytest.mark.parametrize("storage_dtype", [torch.float8_e4m3fn, torch.bfloat16])
def test_layerwise_casting_with_sync(storage_dtype):
    """diffusers' layerwise casting (weights stored low, computed in float32) with the MVS path on computes exactly
    what the same model computes with its cast weights rounded to the storage dtype and kept in float32."""
    model = SynCamMasterTransformer3DModel.from_official_checkpoint(
        random_official_state_dict(CFG), num_attention_heads=CFG.num_heads
    )
    model.enable_layerwise_casting(storage_dtype=storage_dtype, compute_dtype=torch.float32)
    assert model.blocks[0].cam_encoder.weight.dtype == storage_dtype
    rounded = SynCamMasterTransformer3DModel.from_official_checkpoint(
        random_official_state_dict(CFG), num_attention_heads=CFG.num_heads
    )
    rounded.load_state_dict({name: tensor.float() for name, tensor in model.state_dict().items()})
    latents, timestep, context, camera = inputs(1, 2, 3, 4, 6)
    with torch.no_grad():
        cast = model(latents, timestep, context, camera_embedding=camera, num_views=2).sample
        expected = rounded(latents, timestep, context, camera_embedding=camera, num_views=2).sample
        bypassed = model(latents, timestep, context, camera_embedding=None, num_views=2).sample
    assert cast.dtype == torch.float32
    torch.testing.assert_close(cast, expected, rtol=0, atol=1e-6)
    assert (cast - bypassed).abs().max() > 1e-3  # the MVS path really ran
