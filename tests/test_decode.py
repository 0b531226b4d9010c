import copy

import torch

from syncammaster.encoding import latent_statistics
from syncammaster.pipeline import use_channels_last_3d

from tiny import tiny_pipeline


def test_cpu_decoding_uses_channels_last_3d_and_gives_the_same_frames():
    pipe = tiny_pipeline()
    contiguous = copy.deepcopy(pipe.vae)
    latents = torch.randn(2, 16, 3, 4, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        decoded = pipe.decode_latents(latents)  # (2, 3, 9, 32, 48)
        mean, std = latent_statistics(contiguous)  # (1, C, 1, 1, 1) each
        expected = contiguous.decode(latents * std + mean, return_dict=False)[0]
    convolutions = [m for m in pipe.vae.modules() if isinstance(m, torch.nn.Conv3d)]
    assert convolutions and all(m.weight.is_contiguous(memory_format=torch.channels_last_3d) for m in convolutions)
    assert not contiguous.decoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert decoded.shape == (2, 3, 9, 32, 48)
    torch.testing.assert_close(decoded, expected, rtol=0, atol=1e-5)


def test_channels_last_3d_leaves_other_layers_alone():
    layers = torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3), torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(3, 4))
    use_channels_last_3d(layers)
    assert layers[0].weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert not layers[0].weight.is_contiguous()
    assert layers[1].weight.is_contiguous() and layers[2].weight.is_contiguous()
