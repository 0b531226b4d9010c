"""Novel-view benchmark: given one true view of a held-out scene, how close are the generated views to the true ones?

Held-out procedural scenes (a render seed the training never used) are rendered with the default rig of
``syncammaster generate`` (``arc``, 4 cameras 15 deg apart, moved to look at the scene's centre, as
``syncammaster render --rig arc`` does). The true video of camera 1 is given, with the caption and the true cameras;
cameras 2-4 (15, 30 and 45 deg away from it) are generated and scored against their true videos:

- PSNR (dB) and SSIM (torchmetrics' Gaussian-window SSIM) over all frames of the generated views, and PSNR per
  distance from the given view;
- the ``syncammaster evaluate`` measures of the whole scene (given view + generated views): SIFT matches verified
  by a fitted fundamental matrix and their epipolar error against the requested cameras, and motion synchronization
  ("sync corr": the given view is the real video there, every other view a decoded one);
- "motion vs given": the correlation at lag 0 of each generated view's motion-energy curve with the given video's
  after a round trip through the model's VAE, so that a decoded video is compared with a decoded one (decoding adds
  frame-to-frame changes of its own, at the VAE's temporal stride). n/a where a curve is flat.

Rows: the model with its reference kept clean (``reference_mode="clean"``, what it is fine-tuned for); the same
model with the reference re-noised at every step (``"renoise"``, the training-free variant); the no-sync ablation
(the multi-view module bypassed, so the given view cannot reach the others); text-only generation (no reference: the
caption and cameras alone); "copy the input" (the given video repeated in every view, the trivial baseline any real
result must beat); the true views through the model's VAE (the best any sampler on this VAE can do); and, with
``--compare-model DIR``, another model with a clean reference and text-only (e.g. the
model before fine-tuning, to see what the fine-tuning changed in both jobs). Ground truth itself scores PSNR
infinity and is not a row.

Run from the repository root (6 scenes with --compare-model took 22 minutes on a shared 2-core CPU):

    python benchmarks/novel_view.py --scenes 6 --out runs/novel_view --markdown runs/novel_view/table.md \\
        --strip docs/novel_view.png --compare-model runs/model_v7
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from syncammaster.app import default_model_dir
from syncammaster.cameras import CameraRig
from syncammaster.evaluate import EvaluationSettings, evaluate_scene, summarize
from syncammaster.evaluate.report import text_table
from syncammaster.evaluate.sync import lagged_correlation, motion_energy
from syncammaster.pipeline import SynCamMasterPipeline
from syncammaster.render.dataset import SCENES_DIR, render_dataset
from syncammaster.scene import Scene

from fidelity import add_generation_arguments, held_out_seeds  # this folder's fidelity benchmark
from harness import Stopwatch, add_results_argument, machine_line, markdown_table, model_label, write_results

GIVEN_VIEW = 0  # camera 1 of the rig is the given video


def angles_from_given(rig: CameraRig) -> list[float]:
    """Degrees between each camera's optical axis and the given camera's."""
    axes = rig.c2w_at(0)[:, :3, 2]  # (V, 3)
    axes = axes / np.linalg.norm(axes, axis=-1, keepdims=True)
    return [float(np.degrees(np.arccos(np.clip(a @ axes[GIVEN_VIEW], -1, 1)))) for a in axes]


def to_uint8(videos: np.ndarray) -> list[np.ndarray]:
    return [(v * 255).round().clip(0, 255).astype(np.uint8) for v in videos]  # V x (T, H, W, 3)


def generate(pipe, truth: Scene, args, **kwargs) -> tuple[list[np.ndarray], float]:
    height, width = truth.videos[0].shape[1:3]
    with Stopwatch() as clock:
        videos = pipe(prompt=truth.prompt, rig=truth.rig, height=height, width=width, num_frames=truth.num_frames,
                      num_inference_steps=args.steps, guidance_scale=args.guidance_scale, seed=args.generation_seed,
                      output_type="np", **kwargs).videos[0]
    return to_uint8(videos), clock.wall


@torch.no_grad()
def through_vae(pipe, truth: Scene, views: list[int] | None = None) -> tuple[list[np.ndarray], float]:
    """Every true view (or those of ``views``) encoded (the latent a given video gets) and decoded by the model's
    VAE: the best any sampler on this VAE can do."""
    height, width = truth.videos[0].shape[1:3]
    videos = []
    with Stopwatch() as clock:
        for video in (truth.videos if views is None else [truth.videos[v] for v in views]):
            _, latent = pipe.prepare_reference(video, height, width, truth.num_frames, pipe.device)  # (C, F, h, w)
            decoded = pipe.decode_latents(latent[None])[0]  # (3, T, H, W) in [-1, 1]
            videos.append(((decoded.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 3, 0).numpy())
    return videos, clock.wall


def image_scores(made: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """PSNR (dB, over the whole video) and mean SSIM over frames of a generated video against the true one."""
    a = torch.from_numpy(made).permute(0, 3, 1, 2).float() / 255  # (T, 3, H, W)
    b = torch.from_numpy(true).permute(0, 3, 1, 2).float() / 255
    psnr = peak_signal_noise_ratio(a, b, data_range=1.0)
    ssim = structural_similarity_index_measure(a, b, data_range=1.0)
    return float(psnr), float(ssim)


def _fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None or (isinstance(value, float) and not np.isfinite(value)) else format(value, spec)


def _mean_defined(values: list[float | None]) -> float | None:
    """The mean of the defined values, or None if a value is missing (a flat curve counts against, never for)."""
    return None if not values or any(v is None for v in values) else float(np.mean(values))


def table(results: dict[str, dict], angles: list[float]) -> list[list[str]]:
    """One row per method; ``angles``: degrees of each generated view from the given one."""
    header = ["row", "PSNR dB", "SSIM", *[f"PSNR {a:.0f} deg" for a in angles], "verified/pair", "epi median px",
              "<1px", "sync corr", "motion vs given", "s/scene"]
    rows = [header]
    for name, r in results.items():
        s = r["summary"]
        epipolar = s["epipolar"] or {}
        rows.append([name, _fmt(r["psnr"]), _fmt(r["ssim"], ".3f"), *[_fmt(p) for p in r["psnr_by_view"]],
                     _fmt(s["verified"], ".1f"),
                     _fmt(epipolar.get("median_px")) if epipolar else "n/a", _fmt(epipolar.get("under_1px"), ".0%"),
                     _fmt(s["sync_corr"]), _fmt(r["follows_given"]), _fmt(r["seconds"], ".1f")])
    return rows


def write_strip(path: Path, truth: Scene, made: list[np.ndarray], frames=(0, 8, 16), scale: int = 2) -> None:
    """Two rows of views side by side: the true videos (top) and the generated ones (bottom, view 1 = the input),
    one block of frames per view."""
    from PIL import Image

    gap = 4

    def row(videos):
        cells = []
        for video in videos:
            for t in frames:
                cells += [video[min(t, len(video) - 1)], np.full((video.shape[1], gap // 2, 3), 255, np.uint8)]
            cells.append(np.full((video.shape[1], gap * 2, 3), 255, np.uint8))
        return np.concatenate(cells[:-1], axis=1)

    top, bottom = row(truth.videos), row(made)
    strip = np.concatenate([top, np.full((gap * 2, top.shape[1], 3), 255, np.uint8), bottom], axis=0)
    image = Image.fromarray(strip)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.resize((image.width * scale, image.height * scale), Image.NEAREST).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=8, help="held-out scenes (default 8)")
    parser.add_argument("--seed", type=int, default=7000, help="render seed of the held-out scenes (default 7000)")
    parser.add_argument("--rig", default="arc", help="the cameras (default: arc, generate's default)")
    add_generation_arguments(parser)
    parser.add_argument("--compare-model", default=None, metavar="DIR",
                        help="also score this model folder (clean reference, text only), e.g. the model before "
                        "fine-tuning")
    parser.add_argument("--rows", nargs="+", default=None, metavar="ROW",
                        help="score only these rows of the model (default: all)")
    parser.add_argument("--out", default="runs/novel_view", help="renders, scene folders and novel_view.json")
    parser.add_argument("--markdown", default=None, help="also write the table as markdown to this file")
    add_results_argument(parser)
    parser.add_argument("--strip", default=None, help="write a PNG of the first scene: true views over generated")
    args = parser.parse_args()

    machine = machine_line(args.device)
    print(machine)

    # 1. Held-out ground truth, filmed by the rig.
    held_out_seeds(args.seed, args.scenes)  # refuses a seed whose scenes trained the model
    out = Path(args.out)
    rig = CameraRig.load(args.rig, num_views=args.views)
    render_dataset(out / "truth", args.scenes, num_frames=args.frames, size=args.size, seed=args.seed, rig=rig,
                   progress=False)
    truths = [Scene.read(folder) for folder in sorted((out / "truth" / SCENES_DIR).iterdir())][: args.scenes]
    generated = [v for v in range(args.views) if v != GIVEN_VIEW]
    angles = [angles_from_given(truths[0].rig)[v] for v in generated]  # of the generated views

    # 2. The models and the rows each makes.
    def load(folder):
        pipe = SynCamMasterPipeline.from_pretrained(folder or default_model_dir()).to(args.device)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    pipe = load(args.model)
    given = {"reference_view": GIVEN_VIEW}
    makers = {
        "reference kept clean": lambda truth: generate(pipe, truth, args, reference_video=truth.videos[GIVEN_VIEW],
                                                        reference_mode="clean", **given),
        "reference re-noised": lambda truth: generate(pipe, truth, args, reference_video=truth.videos[GIVEN_VIEW],
                                                       reference_mode="renoise", **given),
        "no sync (ablation)": lambda truth: generate(pipe, truth, args, reference_video=truth.videos[GIVEN_VIEW],
                                                      sync=False, **given),
        "text only (no reference)": lambda truth: generate(pipe, truth, args),
        "copy the input": lambda truth: ([truth.videos[GIVEN_VIEW]] * len(truth.videos), 0.0),
        "true views through the VAE": lambda truth: through_vae(pipe, truth),
    }
    if args.rows:
        unknown = set(args.rows) - set(makers)
        if unknown:
            raise SystemExit(f"unknown --rows {sorted(unknown)}; choose from {list(makers)}")
        makers = {row: make for row, make in makers.items() if row in args.rows}
    if args.compare_model:
        other = load(args.compare_model)
        name = Path(args.compare_model).name
        makers[f"{name}: reference kept clean"] = lambda truth: generate(
            other, truth, args, reference_video=truth.videos[GIVEN_VIEW], reference_mode="clean", **given)
        makers[f"{name}: text only"] = lambda truth: generate(other, truth, args)

    # 3. Make and score every row on every scene.
    settings = EvaluationSettings(frames=args.eval_frames)
    scores = {row: {"psnr": [], "ssim": [], "psnr_by_view": [[] for _ in angles], "evaluations": [], "seconds": [],
                    "follows_given": []} for row in makers}
    for n, truth in enumerate(truths):
        line = []
        # The given video through the VAE: every generated view is decoded, and decoding adds its own frame-to-frame
        # changes (a real video and its round trip differ in their motion curves), so motion is compared decoded
        # with decoded.
        given_motion = motion_energy(through_vae(pipe, truth, [GIVEN_VIEW])[0][0])
        for row, make in makers.items():
            videos, seconds = make(truth)
            scene = Scene(videos, truth.rig, truth.intrinsics, truth.prompt)
            folder_name = "".join(c if c.isalnum() else "_" for c in row).strip("_")
            scene.write(out / folder_name / f"scene{n:04d}", overwrite=True)
            if row == "reference kept clean" and n == 0 and args.strip:
                write_strip(Path(args.strip), truth, videos)
            pairs = [image_scores(videos[v], truth.videos[v]) for v in generated]
            scores[row]["psnr"] += [p for p, _ in pairs]
            scores[row]["ssim"] += [s for _, s in pairs]
            for i, (p, _) in enumerate(pairs):
                scores[row]["psnr_by_view"][i].append(p)
            scores[row]["evaluations"].append(evaluate_scene(scene, settings, name=f"{row} {n}"))
            scores[row]["seconds"].append(seconds)
            scores[row]["follows_given"] += [lagged_correlation(given_motion, motion_energy(videos[v]), 0)
                                             for v in generated]
            line.append(f"{row}: {np.mean([p for p, _ in pairs]):.2f} dB")
        print(f"scene {n} ({truth.prompt[:50]}...): " + ", ".join(line), flush=True)

    # 4. Report.
    results = {
        row: {"psnr": float(np.mean(s["psnr"])), "ssim": float(np.mean(s["ssim"])),
              "psnr_by_view": [float(np.mean(p)) if p else None for p in s["psnr_by_view"]],
              "seconds": float(np.mean(s["seconds"])), "summary": summarize(s["evaluations"]),
              "follows_given": _mean_defined(s["follows_given"])}
        for row, s in scores.items()
    }
    rows = table(results, angles)
    print()
    print(text_table(rows))
    out.mkdir(parents=True, exist_ok=True)
    (out / "novel_view.json").write_text(json.dumps({"settings": vars(args), "angles_deg": angles,
                                                     "results": results}, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown_table(rows) + f"\n\n- machine at the start: {machine}\n")
    if args.results:
        model = model_label(args.model)
        write_results("novel_view.py", markdown_table(rows), machine, model)


if __name__ == "__main__":
    main()
