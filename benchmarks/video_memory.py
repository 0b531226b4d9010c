"""Peak memory of reading a given video against the clip's length: ``generate --video`` decodes only what it uses.

1080p60 H.264 clips of each length are made with PyAV (a textured picture drifting, so every frame differs), then read
in a fresh process each, as ``generate --video`` reads them: 17 frames at the shipped model's 15 fps
(``read_clip(path, 17, fps=15)``: every 4th frame of the first 1.07 s), from the start and from 2 s before the end
(``--video-start``: a seek). Beside it, for the short clips, every frame decoded to RGB (``read_video``, what the
``--video`` reader did before; it grows with the clip, about 6.2 MB per 1080p frame, so longer clips are not run).
The table gives each read's peak resident memory above the process's own after its imports (``ru_maxrss`` minus
VmRSS before reading) and the frames the decoder produced.

Run from the repository root (a few minutes on a 2-core CPU, most of it encoding the clips):

    python benchmarks/video_memory.py --lengths 2 5 10 20 30 --work /tmp/video_memory
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import av
import numpy as np

from harness import Stopwatch, add_results_argument, machine_line, markdown_table, text_table, write_results

WIDTH, HEIGHT, FPS = 1920, 1080, 60
FRAMES_USED, MODEL_FPS = 17, 15.0  # the shipped model's default --frames and training frame rate
ALL_FRAMES_UP_TO = 4  # seconds: longer clips are not decoded whole (about 6.2 MB per frame)


def make_clip(path: Path, seconds: int) -> None:
    """A 1080p60 H.264 clip: a random texture drifting 3 pixels per frame (x264 ultrafast, CRF 23)."""
    texture = np.random.default_rng(0).integers(0, 256, (HEIGHT // 8, (WIDTH + 8 * FPS * seconds) // 8, 3),
                                                 dtype=np.uint8).repeat(8, 0).repeat(8, 1)  # (H, W + drift, 3)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for index in range(FPS * seconds):
            picture = np.ascontiguousarray(texture[:, 3 * index : 3 * index + WIDTH])  # (H, W, 3)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def measure(path: str, mode: str, start: float) -> None:
    """In this process: read ``path`` as ``mode`` says and print JSON (peak MB above the start, frames decoded)."""
    from syncammaster.video import read_clip

    before = _rss_mb()
    with Stopwatch() as clock:
        if mode == "used":
            clip = read_clip(path, FRAMES_USED, fps=MODEL_FPS, start=start)
        else:
            clip = read_clip(path)  # every frame: what read_video returns
    seconds = clock.wall
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    print(json.dumps({"peak_mb": peak - before, "decoded": clip.frames_decoded, "kept": clip.frames.shape[0],
                      "seconds": seconds}))


def run_measure(path: Path, mode: str, start: float = 0.0) -> dict:
    command = [sys.executable, __file__, "--measure", str(path), mode, str(start)]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[2, 5, 10, 20, 30], help="clip lengths, seconds")
    parser.add_argument("--work", default="/tmp/video_memory", help="folder for the clips (kept for reruns)")
    parser.add_argument("--measure", nargs=3, metavar=("PATH", "MODE", "START"), help=argparse.SUPPRESS)
    add_results_argument(parser)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure[0], args.measure[1], float(args.measure[2]))
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for seconds in args.lengths:
        path = work / f"clip_{seconds}s_1080p60.mp4"
        if not path.is_file():
            make_clip(path, seconds)
        used = run_measure(path, "used")
        late = run_measure(path, "used", start=seconds - 2)
        whole = run_measure(path, "all") if seconds <= ALL_FRAMES_UP_TO else None
        rows.append([
            f"{seconds} s", f"{FPS * seconds}", f"{path.stat().st_size / 2**20:.1f}",
            f"{used['peak_mb']:.0f}", f"{used['decoded']}",
            f"{late['peak_mb']:.0f}", f"{late['decoded']}",
            "not run" if whole is None else f"{whole['peak_mb']:.0f}",
        ])
        print(f"{seconds} s done", file=sys.stderr)
    header = ["clip", "frames", "file MB", "17 at 15 fps: peak MB", "decoded", "from end - 2 s: peak MB", "decoded",
              "every frame: peak MB"]
    machine = machine_line()
    print(text_table([header, *rows]))
    print(f"machine: {machine}")
    if args.results:
        write_results("video_memory.py", markdown_table([header, *rows]), machine, "none (the reader alone)")


if __name__ == "__main__":
    main()
