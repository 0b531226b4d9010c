"""FVD-V with a local TorchScript video network: the Frechet distance, the clips across views, the command."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from syncammaster.cameras import CameraRig
from syncammaster.cli import main
from syncammaster.evaluate.fvd import CLIP_SIDE, MIN_CLIP_FRAMES, FvdError, FvdScorer, frechet_distance
from syncammaster.render import sample_cameras
from syncammaster.scene import Scene

VIEWS, FRAMES, SIZE = 3, 5, 32


class TinyVideoNet(torch.nn.Module):
    """A random 3-D convolution pooled over space and time: (N, 3, T, H, W) -> (N, 6)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv3d(3, 6, kernel_size=3, stride=(1, 4, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x)).mean(dim=(2, 3, 4))


class TinyI3dLike(TinyVideoNet):
    """The shared I3D's calling convention: logits unless ``return_features``, inputs rescaled unless told not to."""

    def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True,
                return_features: bool = False) -> torch.Tensor:
        if rescale or resize or not return_features:
            raise RuntimeError("expected rescale=False, resize=False, return_features=True")
        return torch.tanh(self.conv(x)).mean(dim=(2, 3, 4))


def _save(module: torch.nn.Module, path) -> str:
    """The module as FVD's I3D is shared: a TorchScript archive (torch deprecates the format, users still hold it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(module).save(str(path))
    return str(path)


def _scene(seed: int) -> Scene:
    """Random views: each a random image drifting by a pixel per frame."""
    rng = np.random.default_rng(seed)
    videos = [np.stack([np.roll(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), t, axis=1)
                        for t in range(FRAMES)]) for _ in range(VIEWS)]
    rig = sample_cameras(seed, VIEWS, size=SIZE)
    return Scene(videos, rig, rig.intrinsics, prompt="noise")


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    # Same covariance, means 2 apart: the distance is |mu_a - mu_b|^2 = 4 (up to sampling noise).
    assert frechet_distance(a, a + np.array([2.0, 0.0, 0.0])) == pytest.approx(4.0, abs=1e-9)
    # One dimension: (mu_a - mu_b)^2 + (sigma_a - sigma_b)^2.
    wide = rng.normal(scale=3.0, size=(20000, 1))
    narrow = rng.normal(scale=1.0, size=(20000, 1)) + 1.0
    assert frechet_distance(wide, narrow) == pytest.approx(1.0 + 4.0, rel=0.05)
    with pytest.raises(FvdError, match="at least 2 clips"):
        frechet_distance(a[:1], a)


def test_clips_run_across_the_views_at_one_time_step():
    scene = _scene(0)
    clips = FvdScorer.clips(scene.videos, [0, 4])
    hold = -(-MIN_CLIP_FRAMES // VIEWS)  # each view held for ceil(16 / 3) = 6 frames
    assert clips.shape == (2, 3, VIEWS * hold, CLIP_SIDE, CLIP_SIDE)
    assert clips.min() >= -1.0 and clips.max() <= 1.0
    for view in range(VIEWS):
        held = clips[1, :, view * hold : (view + 1) * hold]  # (3, hold, 224, 224): view `view` at time step 4
        assert torch.equal(held[:, 0], held[:, -1])
        mean = scene.videos[view][4].astype(np.float64).mean() / 127.5 - 1
        assert held.mean().item() == pytest.approx(mean, abs=0.02)


@pytest.mark.parametrize("network", [TinyVideoNet, TinyI3dLike])
def test_evaluate_reports_fvd_v_against_reference_scenes(network, tmp_path, capsys):
    model = _save(network(), tmp_path / "video_net.pt")
    scene = _scene(0).write(tmp_path / "scene", grid=False)
    same = _scene(0).write(tmp_path / "same", grid=False)
    other = _scene(7).write(tmp_path / "other", grid=False)
    dark = _scene(0)
    dark = Scene([v // 4 for v in dark.videos], dark.rig, dark.intrinsics, prompt="noise").write(tmp_path / "dark",
                                                                                                 grid=False)
    values = {}
    for name, reference in (("same", same), ("other", other), ("dark", dark)):
        out = tmp_path / f"{name}.json"
        assert main(["evaluate", str(scene), "--fvd", model, "--fvd-reference", str(reference), "--frames", "3",
                     "--json", str(out), "--no-plots", "--quiet"]) == 0
        table = capsys.readouterr().out
        assert "empty: no --fvd" not in table
        report = json.loads(out.read_text())
        values[name] = report["summary"]["fvd_v"]
        assert report["summary"]["table"]["FVD-V"] == values[name] == report["scenes"][0]["table"]["FVD-V"]
        assert report["settings"]["fvd_reference"] == [str(reference)]
    assert values["same"] == pytest.approx(0.0, abs=1e-6)
    assert values["dark"] > values["other"] > 0.0  # a darkened copy is farther than other noise of the same kind


def test_fvd_needs_its_reference_and_a_usable_network(tmp_path, capsys):
    scene = str(_scene(0).write(tmp_path / "scene", grid=False))
    out = tmp_path / "out"

    def refused(*args: str) -> str:
        assert main(["evaluate", scene, *args, "--json", str(out / "eval.json"), "--quiet"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert not out.exists()
        return err

    model = _save(TinyVideoNet(), tmp_path / "net.pt")
    assert "go together" in refused("--fvd", model)
    assert "go together" in refused("--fvd-reference", scene)
    assert "does not exist" in refused("--fvd", str(tmp_path / "missing.pt"), "--fvd-reference", scene)
    (tmp_path / "broken.pt").write_bytes(b"not a TorchScript archive")
    assert "TorchScript" in refused("--fvd", str(tmp_path / "broken.pt"), "--fvd-reference", scene)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "0 .pt files" in refused("--fvd", str(empty), "--fvd-reference", scene)
    three = _scene(1)
    two_views = Scene(three.videos[:2], CameraRig(three.rig.c2w[:2]), three.intrinsics).write(tmp_path / "two_views",
                                                                                             grid=False)
    assert "same number of views" in refused("--fvd", model, "--fvd-reference", str(two_views))
