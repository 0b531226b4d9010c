"""Novel-view PSNR along a fine-tune: one model folder with the multi-view module of each checkpoint in turn.

Each checkpoint (a sync stage's ``step*.ckpt`` / ``last.ckpt``, whose state holds the multi-view module's
parameters or, for a run with ``lora_rank``, its novel-view LoRA; or a model folder, with its ``novel_view_lora/`` if
it has one) is put into the model's transformer (a LoRA as its novel-view adapter) and scored on two rows of
``novel_view.py``, on held-out scenes (render seed 7000 by default, ``arc`` rig, camera 1 given):

- ``clean``: the generated cameras 2-4 with camera 1's video given clean (the benchmark's "reference kept clean");
- ``same pose``: a two-camera rig whose second camera is the given camera itself; the generated view is scored
  against the given video. A model that carries the given view across reproduces it; the given video's own round
  trip through the VAE (printed first, "round trip of the given view") is the ceiling, and "same pose vs round trip"
  says how close the generated view comes to that round trip.

Run from the repository root (with fewer denoising steps than the table, so that it stays a few minutes per
checkpoint on a 2-core CPU):

    python benchmarks/novel_view_curve.py --model src/syncammaster/assets/default_model --scenes 3 --steps 20 \\
        --checkpoints runs/sync_novel/kept/*.ckpt --out runs/novel_view_curve
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import torch

from syncammaster.app import default_model_dir
from syncammaster.cameras import CameraRig
from syncammaster.lora import NOVEL_VIEW_ADAPTER
from syncammaster.models import SynCamMasterTransformer3DModel
from syncammaster.pipeline import SynCamMasterPipeline
from syncammaster.render.dataset import SCENES_DIR, render_dataset
from syncammaster.scene import Scene

from fidelity import add_generation_arguments, held_out_seeds  # this folder's fidelity benchmark
from harness import add_results_argument, machine_line, markdown_table, model_label, write_results
from novel_view import GIVEN_VIEW, generate, image_scores, through_vae  # this folder's novel-view benchmark


def module_state(path: Path) -> dict[str, torch.Tensor]:
    """The multi-view module's parameters of a sync-stage checkpoint or of a model folder's transformer."""
    if path.is_dir():
        transformer = SynCamMasterTransformer3DModel.from_pretrained(path, subfolder="transformer")
        return dict(transformer.named_mvs_parameters())
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {k.removeprefix("transformer."): v for k, v in state.items() if k.startswith("transformer.")}


def is_lora_checkpoint(path: Path) -> bool:
    if path.is_dir():
        return False
    return any(".lora_" in key for key in torch.load(path, map_location="cpu", weights_only=True)["state_dict"])


def put_checkpoint(pipe: SynCamMasterPipeline, path: Path) -> None:
    """The checkpoint's module or novel-view LoRA into ``pipe``, in place of the previous one's."""
    if pipe.has_novel_view_adapter:
        pipe.unload_lora_weights()  # the layers as they were, so a folder's module loads under its own names
    if is_lora_checkpoint(path):  # peft's names in the state carry the adapter's name; diffusers' LoRA keys do not
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        pipe.load_lora_weights({k.replace(f".{NOVEL_VIEW_ADAPTER}.", "."): v for k, v in state.items()},
                               adapter_name=NOVEL_VIEW_ADAPTER)
        return
    missing = pipe.transformer.load_state_dict(module_state(path), strict=False).unexpected_keys
    if missing:
        raise SystemExit(f"{path} holds parameters this transformer lacks, e.g. {missing[0]}")
    if path.is_dir():
        pipe.load_novel_view_adapter(path)


def checkpoint_step(path: Path) -> int | None:
    match = re.search(r"step[=_]?(\d+)", path.name)
    if match:
        return int(match.group(1))
    if path.suffix == ".ckpt":
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", nargs="+", required=True, help="sync-stage checkpoints or model folders")
    parser.add_argument("--scenes", type=int, default=3, help="held-out scenes (default 3)")
    parser.add_argument("--seed", type=int, default=7000, help="render seed of the held-out scenes (default 7000)")
    add_generation_arguments(parser)
    parser.add_argument("--out", default="runs/novel_view_curve", help="renders and curve.json")
    add_results_argument(parser)
    args = parser.parse_args()

    machine = machine_line(args.device)
    print(machine)
    held_out_seeds(args.seed, args.scenes)
    out = Path(args.out)
    rig = CameraRig.load("arc", num_views=args.views)
    render_dataset(out / "truth", args.scenes, num_frames=args.frames, size=args.size, seed=args.seed, rig=rig,
                   progress=False)
    truths = [Scene.read(folder) for folder in sorted((out / "truth" / SCENES_DIR).iterdir())][: args.scenes]
    pipe = SynCamMasterPipeline.from_pretrained(args.model or default_model_dir()).to(args.device)
    pipe.set_progress_bar_config(disable=True)
    given = {"reference_mode": "clean", "reference_view": GIVEN_VIEW}

    curve_file = out / "curve.json"
    curve = json.loads(curve_file.read_text()) if curve_file.exists() else {}
    copy = [image_scores(t.videos[GIVEN_VIEW], t.videos[v])[0] for t in truths for v in range(1, len(t.videos))]
    curve["copy the input"] = {"step": None, "clean_psnr": float(np.mean(copy)), "same_pose_psnr": float("inf")}
    print(f"copy the input: {np.mean(copy):.2f} dB", flush=True)
    round_trips = [through_vae(pipe, truth, [GIVEN_VIEW])[0][0] for truth in truths]
    ceiling = float(np.mean([image_scores(round_trip, truth.videos[GIVEN_VIEW])[0]
                             for round_trip, truth in zip(round_trips, truths, strict=True)]))
    curve["round trip of the given view"] = {"step": None, "clean_psnr": None, "same_pose_psnr": ceiling}
    print(f"round trip of the given view: {ceiling:.2f} dB", flush=True)
    table = [["row", "step", "clean dB (cameras 2-4)", "same pose dB", "same pose vs round trip dB"],
             ["copy the input", "-", f"{np.mean(copy):.2f}", "(identical)", "-"],
             ["round trip of the given view", "-", "-", f"{ceiling:.2f}", "-"]]
    for checkpoint in map(Path, args.checkpoints):
        put_checkpoint(pipe, checkpoint)
        clean, same, to_round_trip = [], [], []
        for truth, round_trip in zip(truths, round_trips, strict=True):
            reference = truth.videos[GIVEN_VIEW]
            videos, _ = generate(pipe, truth, args, reference_video=reference, **given)
            clean += [image_scores(videos[v], truth.videos[v])[0] for v in range(len(videos)) if v != GIVEN_VIEW]
            pair = Scene([reference, reference], pair_rig(truth.rig), truth.intrinsics, truth.prompt)
            videos, _ = generate(pipe, pair, args, reference_video=reference, **given)
            same.append(image_scores(videos[1], reference)[0])
            to_round_trip.append(image_scores(videos[1], round_trip)[0])
        step = checkpoint_step(checkpoint)
        curve[str(checkpoint)] = {"step": step, "clean_psnr": float(np.mean(clean)),
                                  "same_pose_psnr": float(np.mean(same)),
                                  "same_pose_vs_round_trip_psnr": float(np.mean(to_round_trip))}
        print(f"{checkpoint} (step {step}): clean {np.mean(clean):.2f} dB, same pose {np.mean(same):.2f} dB "
              f"(against the round trip: {np.mean(to_round_trip):.2f} dB)", flush=True)
        out.mkdir(parents=True, exist_ok=True)
        curve_file.write_text(json.dumps(curve, indent=2) + "\n")
        table.append([str(checkpoint), "-" if step is None else str(step), f"{np.mean(clean):.2f}",
                      f"{np.mean(same):.2f}", f"{np.mean(to_round_trip):.2f}"])
    print(markdown_table(table))
    if args.results:
        write_results("novel_view_curve.py", markdown_table(table) + f"\n\n{len(truths)} held-out scenes of seed "
                      f"{args.seed}, {args.steps} steps.", machine, model_label(args.model))


def pair_rig(rig: CameraRig) -> CameraRig:
    """Two cameras at the given camera's pose."""
    c2w = rig.c2w[[GIVEN_VIEW, GIVEN_VIEW]]
    return CameraRig(c2w, ["given", "same_pose"], intrinsics=rig.intrinsics, subject=rig.subject)


if __name__ == "__main__":
    main()
