"""nerfstudio's own parsers read ``syncammaster export``: poses, intrinsics, times, images, and rays through them.

A rendered scene (with depth) is exported as ``--format nerfstudio`` (all frames, and ``--frame 4``) and as
``--format dnerf``, then parsed by nerfstudio's ``nerfstudio-data`` parser (as written: no re-orientation, centring
or scaling; and with its defaults, as ``ns-train splatfacto`` runs it) and by its D-NeRF parser (train, val, test).
Each parsed camera is compared with the file's matrix, intrinsics and time; then nerfstudio's own rays
(``Cameras.generate_rays``) through cam01's surface pixels, cut at the rendered depth, are projected into the other
parsed cameras and compared with where the scene's own cameras put those points.

nerfstudio is not a dependency of this project: install it and the few packages its parsers import into a separate
folder, then run from the repository root:

    pip install --target /tmp/nsenv --no-deps nerfstudio==1.1.5 jaxtyping wadler_lindig imageio tyro viser \\
        typeguard docstring_parser shtab msgspec websockets zstandard tensorboard protobuf absl-py
    PYTHONPATH=/tmp/nsenv python benchmarks/nerfstudio_parsers.py --work /tmp/nerfstudio_parsers
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.data.dataparsers.dnerf_dataparser import DNeRFDataParserConfig
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

from syncammaster.cameras import CameraRig, Intrinsics
from syncammaster.cli import main as syncammaster
from syncammaster.render import project_points

from harness import add_results_argument, machine_line, write_results

NUM_VIEWS, NUM_FRAMES, SIZE = 4, 9, 64
AS_WRITTEN = {"orientation_method": "none", "center_method": "none", "auto_scale_poses": False, "eval_mode": "all",
              "load_3D_points": False}


def reprojection_error(cameras: Cameras, keys: list[tuple[str, int]], scene: Path, scale: float) -> tuple[float, int]:
    """Max pixel distance between nerfstudio's rays through cam01's surface pixels (cut at the rendered depth, in the
    export's unit) projected with the other parsed cameras, and the scene's own projection; camera pairs checked."""
    rig = CameraRig.from_syncamvideo_json(scene / "cameras" / "camera_extrinsics.json")
    intrinsics = Intrinsics.from_json(scene / "cameras" / "intrinsics.json")
    depth = {name: np.load(scene / "depth" / f"{name}.npz")["depth"] for name in rig.names}  # (T, S, S) each
    index = {key: i for i, key in enumerate(keys)}
    worst, pairs = 0.0, 0
    for t in (0, NUM_FRAMES - 1):
        seen = np.isfinite(depth["cam01"][t])
        rows, columns = np.nonzero(seen)
        z = depth["cam01"][t][seen].astype(np.float64)  # (N,) camera depth, scene unit
        coords = torch.tensor(np.stack([rows + 0.5, columns + 0.5], -1), dtype=torch.float32)  # (N, 2): (y, x)
        rays = cameras.generate_rays(camera_indices=index["cam01", t], coords=coords)
        origins, directions = rays.origins.double().numpy(), rays.directions.double().numpy()  # (N, 3)
        forward = -cameras.camera_to_worlds[index["cam01", t]].double().numpy()[:3, 2]  # OpenGL: looks along -z
        points = origins + directions * (scale * z / (directions @ forward))[:, None]  # (N, 3), export's world
        # The same pixels lifted and projected with the scene's own OpenCV cameras.
        x, y = (columns + 0.5 - intrinsics.cx) / intrinsics.fx, (rows + 0.5 - intrinsics.cy) / intrinsics.fy
        scene_points = (np.stack([x, y, np.ones_like(x)], -1) * z[:, None]) @ rig.c2w[0, :3, :3].T + rig.c2w[0, :3, 3]
        scene_pixels, scene_depth = project_points(rig, intrinsics, scene_points)  # (V, N, 2), (V, N)
        for v, name in enumerate(rig.names[1:], start=1):
            j = index[name, t]
            w2c = np.linalg.inv(np.vstack([cameras.camera_to_worlds[j].double().numpy(), [0, 0, 0, 1]]))
            in_camera = points @ w2c[:3, :3].T + w2c[:3, 3]  # (N, 3), OpenGL axes
            depth_j = -in_camera[:, 2]
            pixels = np.stack([float(cameras.cx[j]) + float(cameras.fx[j]) * in_camera[:, 0] / depth_j,
                               float(cameras.cy[j]) - float(cameras.fy[j]) * in_camera[:, 1] / depth_j], -1)
            front = (depth_j > 0.05 * scale) & (scene_depth[v] > 0.05)
            worst = max(worst, float(np.abs(pixels[front] - scene_pixels[v][front]).max()))
            pairs += 1
    return worst, pairs


def compare(cameras: Cameras, meta: dict) -> str:
    """The parsed cameras against the file: largest differences of pose, focal length, principal point, time."""
    poses = torch.tensor([f["transform_matrix"] for f in meta["frames"]], dtype=torch.float32)[:, :3]  # (N, 3, 4)
    times = "not read"
    if cameras.times is not None:
        written = torch.tensor([f["time"] for f in meta["frames"]])  # (N,)
        times = f"max diff {float((cameras.times.flatten() - written).abs().max()):.0e}"
    return (f"pose max diff {float((cameras.camera_to_worlds - poses).abs().max()):.0e}, "
            f"fx {float(cameras.fx.max()):.3f}, cx {float(cameras.cx.max()):.1f}, times {times}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="/tmp/nerfstudio_parsers", help="folder for the scene and exports")
    add_results_argument(parser)
    args = parser.parse_args()
    work = Path(args.work)
    machine = machine_line()
    print(machine)
    shutil.rmtree(work, ignore_errors=True)
    assert syncammaster(["render", "--scenes", "1", "--cameras", str(NUM_VIEWS), "--frames", str(NUM_FRAMES),
                         "--size", str(SIZE), "--seed", "5", "--workers", "1", "--quiet", "--out",
                         str(work / "rendered")]) == 0
    scene = work / "rendered" / "train" / "procedural" / "scene0000"
    for name, extra in (("ns", []), ("ns_frame4", ["--frame", "4"]), ("dnerf", ["--format", "dnerf"])):
        assert syncammaster(["export", str(scene), *extra, "--out", str(work / name)]) == 0
    lines = []

    # nerfstudio-data: as written, all images; with its defaults; one time step.
    meta = json.loads((work / "ns" / "transforms.json").read_text())
    outputs = NerfstudioDataParserConfig(data=work / "ns", **AS_WRITTEN).setup().get_dataparser_outputs("train")
    assert [p.name for p in outputs.image_filenames] == [Path(f["file_path"]).name for f in meta["frames"]]
    keys = [(f["camera"], f["frame_index"]) for f in meta["frames"]]
    error, pairs = reprojection_error(outputs.cameras, keys, scene, 1.0)
    lines.append(f"nerfstudio-data, transforms.json as written: {len(keys)} images, {compare(outputs.cameras, meta)}; "
                 f"rays reprojected: {pairs} camera pairs, max {error:.1e} px")
    defaults = NerfstudioDataParserConfig(data=work / "ns", load_3D_points=False).setup()
    train, val = (defaults.get_dataparser_outputs(split) for split in ("train", "val"))
    lines.append(f"nerfstudio-data, defaults: {len(train.image_filenames)} train / {len(val.image_filenames)} val "
                 f"images, times {'not read' if train.cameras.times is None else 'read'}")
    frame4 = NerfstudioDataParserConfig(data=work / "ns_frame4", **AS_WRITTEN).setup().get_dataparser_outputs("train")
    lines.append(f"nerfstudio-data, --frame 4: {', '.join(p.name for p in frame4.image_filenames)}")

    # D-NeRF: every split; rays through the train and test cameras together.
    dnerf = DNeRFDataParserConfig(data=work / "dnerf").setup()
    parsed = {}
    for split in ("train", "val", "test"):
        meta = json.loads((work / "dnerf" / f"transforms_{split}.json").read_text())
        outputs = dnerf.get_dataparser_outputs(split)
        parsed[split] = (outputs.cameras, meta)
        missing = sum(not p.is_file() for p in outputs.image_filenames)
        cameras = sorted({f["camera"] for f in meta["frames"]})
        times = outputs.cameras.times
        lines.append(f"D-NeRF {split}: {len(outputs.image_filenames)} images ({missing} missing) of "
                     f"{', '.join(cameras)}, {compare(outputs.cameras, meta)}, times {float(times.min()):g} to "
                     f"{float(times.max()):g}")
    (train_cameras, train_meta), (test_cameras, test_meta) = parsed["train"], parsed["test"]
    both = Cameras(**{key: torch.cat([getattr(train_cameras, key), getattr(test_cameras, key)])
                      for key in ("camera_to_worlds", "fx", "fy", "cx", "cy")})
    keys = [(f["camera"], f["frame_index"]) for f in train_meta["frames"] + test_meta["frames"]]
    error, pairs = reprojection_error(both, keys, scene, train_meta["applied_scale"])
    lines.append(f"D-NeRF rays reprojected (train and test cameras): {pairs} camera pairs, max {error:.1e} px")
    print("\n".join(lines))
    if args.results:
        version = importlib.metadata.version("nerfstudio")
        write_results("nerfstudio_parsers.py", "```\n" + "\n".join(lines) + "\n```", f"{machine}, nerfstudio {version}",
                      "none (a rendered scene)")


if __name__ == "__main__":
    main()
