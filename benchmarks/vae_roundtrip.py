"""How closely VAEs reproduce held-out videos: L1 error of encode + decode, overall and per frame.

Every video of a SynCamVideo-layout root (the first ``--frames`` frames, resized and cropped as caching does) goes
through each VAE's encoder (posterior mean) and decoder; the table gives the mean absolute error on [-1, 1] pixel
values over all videos, and per video frame (frame 0 is coded alone by the causal VAE, every later group of 4
frames shares a latent frame). Several VAEs are scored side by side on the same videos, e.g. one decoder
fine-tune against another. The frame-0 jump column compares the change from frame 0 to frame 1 with the change
between later frames, in the decoded videos: about 1 means frame 0 is coded like the rest. The colour-cast columns
separate a shift of a frame's colours from blur: the length of the difference between the decoded and the true
frame's mean RGB, in 8-bit levels (0 when the colours are kept, however blurred), for frame 0 and for later frames.

Run from the repository root (about 1 s per video and VAE on a 2-core CPU):

    syncammaster render --scenes 24 --cameras 6 --frames 17 --size 128 --seed 9000 --out runs/heldout/data
    python benchmarks/vae_roundtrip.py --data runs/heldout/data --vae src/syncammaster/assets/default_model/vae
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from diffusers import AutoencoderKLWan
from tqdm import tqdm

from syncammaster.data import SceneIndex
from syncammaster.data.latent_cache import load_clip
from syncammaster.evaluate import first_frame_jump

from harness import Stopwatch, add_results_argument, machine_line, markdown_table, text_table, write_results


@torch.no_grad()
def roundtrip_errors(vae, videos: list, batch: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(N, T) mean absolute error of every video's round trip, per frame; (N, T) colour cast per frame in 8-bit
    levels; (N,) first-frame jump of each result (NaN where undefined)."""
    errors, casts, jumps = [], [], []
    for start in tqdm(range(0, len(videos), batch), desc="round trips", unit="batch", leave=False):
        clips = torch.stack(videos[start : start + batch])  # (B, 3, T, H, W) in [-1, 1]
        decoded = vae.decode(vae.encode(clips).latent_dist.mean).sample.clamp(-1, 1)
        residual = decoded - clips
        errors.append(residual.abs().mean(dim=(1, 3, 4)))  # (B, T)
        casts.append(residual.mean(dim=(3, 4)).norm(dim=1) * 127.5)  # (B, T): mean-RGB offset, 8-bit levels
        jumps += [first_frame_jump(clip.permute(1, 2, 3, 0).numpy()) for clip in decoded]  # (T, H, W, 3) each
    return torch.cat(errors), torch.cat(casts), np.array(jumps, dtype=float)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="SynCamVideo-layout root of held-out videos")
    parser.add_argument("--vae", nargs="+", required=True, help="AutoencoderKLWan folders to score")
    parser.add_argument("--frames", type=int, default=17, help="first frames of each video, 4k+1 (default 17)")
    parser.add_argument("--size", type=int, default=128, help="square side after resize and crop (default 128)")
    parser.add_argument("--batch", type=int, default=4, help="videos per VAE call (default 4)")
    add_results_argument(parser)
    args = parser.parse_args()
    if (args.frames - 1) % 4:
        parser.error(f"--frames must be 4k+1, got {args.frames}")

    index = SceneIndex.build(args.data)
    paths = [index.video_path(scene, camera) for scene in index for camera in scene.cameras]
    videos = [load_clip(path, args.frames, args.size, args.size) for path in tqdm(paths, desc="reading", unit="video")]
    machine = machine_line()
    print(machine)
    print(f"{len(videos)} videos of {len(index)} scenes from {args.data}, {args.frames} frames at {args.size}px")
    truth_jump = np.nanmean(np.array([first_frame_jump(v.permute(1, 2, 3, 0).numpy()) for v in videos], dtype=float))
    print(f"first-frame jump of the videos themselves: {truth_jump:.2f}")
    rows = [["vae", "L1 all", "frame 0", "frames 1-4", f"frames {args.frames - 4}-{args.frames - 1}", "frame-0 jump",
             "cast f0", "cast later", "s/video"],
            ["none (the videos themselves)", "", "", "", "", f"{truth_jump:.2f}", "", "", ""]]
    for folder in args.vae:
        vae = AutoencoderKLWan.from_pretrained(folder).eval()
        with Stopwatch() as clock:
            errors, casts, jumps = roundtrip_errors(vae, videos, args.batch)  # (N, T), (N, T), (N,)
        seconds = clock.wall / len(videos)
        per_frame = errors.mean(0)
        rows.append([folder, f"{errors.mean():.4f}", f"{per_frame[0]:.4f}", f"{per_frame[1:5].mean():.4f}",
                     f"{per_frame[-4:].mean():.4f}", f"{np.nanmean(jumps):.2f}",
                     f"{casts[:, 0].mean():.1f}", f"{casts[:, 1:].mean():.1f}", f"{seconds:.2f}"])
    print(text_table(rows))
    if args.results:
        write_results("vae_roundtrip.py", markdown_table(rows) + f"\n\n{len(videos)} videos of {len(index)} scenes "
                      f"({args.data}), {args.frames} frames at {args.size} px.", machine, ", ".join(args.vae))


if __name__ == "__main__":
    main()
