"""The runner's multi-process pieces that run in one process: data order, per-group draws, strategy checks."""

import pytest
import torch
from diffusers import WanTransformer3DModel

from syncammaster import SynCamMasterTransformer3DModel
from syncammaster.cli import main
from syncammaster.training import FlowMatchingModule, train
from syncammaster.training.config import config_from_dict
from syncammaster.training.modules import group_generators
from syncammaster.training.runner import _strategy, batch_items

TEXT_DIM = 8


def tiny_sync_model() -> SynCamMasterTransformer3DModel:
    torch.manual_seed(0)
    base = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=4,
                                 out_channels=4, text_dim=TEXT_DIM, freq_dim=16, ffn_dim=24, num_layers=2)
    model = SynCamMasterTransformer3DModel.from_wan(base)
    with torch.no_grad():
        for p in model.mvs_parameters():  # away from the zero start, so that every MVS weight matters
            p.add_(0.05 * torch.randn_like(p))
    return model


def test_processes_share_out_the_global_batches_of_one_process():
    for step in range(3):
        one = list(batch_items(step, world_size=1, rank=0, batch_size=4))
        two = [item for rank in range(2) for item in batch_items(step, world_size=2, rank=rank, batch_size=2)]
        four = [item for rank in range(4) for item in batch_items(step, world_size=4, rank=rank, batch_size=1)]
        assert one == two == four == list(range(4 * step, 4 * step + 4))


def test_a_batch_loss_is_the_mean_of_its_groups_losses_with_their_own_draws():
    """What makes N processes of batch B train the model of one process of batch N * B: each group's noise, timestep,
    dropped caption and reference view come from its own generator, and the batch loss is the mean over groups."""
    generator = torch.Generator().manual_seed(1)
    batch = {"latents": torch.randn(2, 2, 4, 2, 4, 6, generator=generator),  # (B, V, C, F, h, w)
             "prompt_embeds": torch.randn(2, 5, TEXT_DIM, generator=generator),
             "camera": torch.randn(2, 2, 2, 12, generator=generator)}
    null = torch.zeros(5, TEXT_DIM)
    module = FlowMatchingModule(tiny_sync_model(), caption_dropout=0.5, null_prompt_embeds=null,
                                reference_view_prob=0.5)

    def draws(first):
        return [torch.Generator().manual_seed(seed) for seed in range(first, first + 2)]

    with torch.no_grad():
        together = module.loss(batch, draws(10))
        apart = [module.loss({k: v[b : b + 1] for k, v in batch.items()}, draws(10)[b : b + 1]) for b in range(2)]
        other_draws = module.loss(batch, draws(20))
    torch.testing.assert_close(together, torch.stack(apart).mean(), rtol=1e-5, atol=0)
    assert not torch.allclose(together, other_draws)


def test_group_generators_follow_the_items_of_the_batch():
    class Trainer:  # what the module reads of its trainer: the step, the number of processes and its rank
        global_step = 5

        def __init__(self, world_size, global_rank):
            self.world_size, self.global_rank = world_size, global_rank

    def seeds(world_size, rank, batch_size):
        module = FlowMatchingModule(tiny_sync_model())
        module._trainer = Trainer(world_size, rank)
        return [g.initial_seed() for g in group_generators(module, seed=3, batch_index=0, batch_size=batch_size)]

    assert seeds(1, 0, 4) == seeds(2, 0, 2) + seeds(2, 1, 2) == seeds(4, 0, 1) + seeds(4, 1, 1) + seeds(
        4, 2, 1) + seeds(4, 3, 1)
    assert len(set(seeds(1, 0, 4))) == 4
    alone = FlowMatchingModule(tiny_sync_model())  # no trainer: the batch index stands for the step
    assert [g.initial_seed() for g in group_generators(alone, seed=3, batch_index=5, batch_size=4)] == seeds(1, 0, 4)


def gpu_config(tmp_path, strategy):
    return config_from_dict({"stage": "sync", "data_root": str(tmp_path / "no-data"), "output_dir": str(tmp_path),
                             "components": str(tmp_path / "no-model"), "base_model": str(tmp_path / "no-model"),
                             "strategy": strategy})


@pytest.mark.parametrize("strategy", ["fsdp", "deepspeed_stage_1", "deepspeed_stage_3"])
def test_gpu_strategies_are_refused_without_gpus_before_any_data_is_read(tmp_path, monkeypatch, capsys, strategy):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=f"strategy '{strategy}' needs CUDA GPUs.*\"ddp\""):
        train(gpu_config(tmp_path, strategy))  # the data root and model folders do not exist: nothing was read
    config = tmp_path / "sync.toml"
    config.write_text(f'stage = "sync"\ndata_root = "no-data"\noutput_dir = "run"\ncomponents = "m"\n'
                      f'base_model = "m"\nstrategy = "{strategy}"\n')
    assert main(["train", "--config", str(config)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "needs CUDA GPUs" in error
    assert not (tmp_path / "run").exists()


def test_fsdp_shards_the_model_block_by_block(tmp_path):
    from lightning.pytorch.strategies import FSDPStrategy

    module = FlowMatchingModule(tiny_sync_model())
    strategy = _strategy(gpu_config(tmp_path, "fsdp"), module)
    assert isinstance(strategy, FSDPStrategy)
    policy = strategy.kwargs["auto_wrap_policy"]
    block = module.transformer.blocks[0]
    assert policy._module_classes == {type(block)}
    assert _strategy(gpu_config(tmp_path, "deepspeed"), module) == "deepspeed_stage_1"


def test_sync_checkpoints_restore_under_deepspeed_too():
    """DeepSpeed restores the weights itself and hands the module a checkpoint without a state_dict."""
    module = FlowMatchingModule(tiny_sync_model())
    module.on_load_checkpoint({"global_step": 4})  # DeepSpeed's client state
    checkpoint = {"state_dict": {}}
    module.on_load_checkpoint(checkpoint)  # a file checkpoint of the module alone gets the frozen base filled in
    assert checkpoint["state_dict"].keys() == module.state_dict().keys()


def test_an_interrupted_run_closes_its_progress_bar():
    from syncammaster.training.runner import StepProgressBar

    bar = StepProgressBar("train sync")

    class Trainer:  # what the callback reads of Lightning's trainer
        max_steps, global_step, global_rank = 10, 3, 0

    bar.on_train_start(Trainer(), None)
    assert bar.bar is not None
    bar.on_exception(Trainer(), None, KeyboardInterrupt())  # Lightning passes the exception
    assert bar.bar is None
