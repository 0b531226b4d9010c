"""Writes a still strip of a scene folder: one row per view, a few frames per row (used for the README picture).

    python scripts/still_strip.py outputs/demo docs/default_run.png --frames 0 8 16
"""

import argparse

import numpy as np
from PIL import Image

from syncammaster.scene import Scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene")
    parser.add_argument("out")
    parser.add_argument("--frames", type=int, nargs="+", default=[0, 8, 16])
    parser.add_argument("--scale", type=int, default=2, help="pixel upscaling of the strip")
    args = parser.parse_args()
    scene = Scene.read(args.scene)
    gap = 4
    rows = []
    for video in scene.videos:  # (T, H, W, 3)
        cells = [video[min(t, len(video) - 1)] for t in args.frames]
        spacer = np.full((video.shape[1], gap, 3), 255, np.uint8)
        rows.append(np.concatenate([c for cell in cells for c in (cell, spacer)][:-1], axis=1))
    spacer = np.full((gap, rows[0].shape[1], 3), 255, np.uint8)
    strip = np.concatenate([r for row in rows for r in (row, spacer)][:-1], axis=0)
    image = Image.fromarray(strip)
    image.resize((image.width * args.scale, image.height * args.scale), Image.NEAREST).save(args.out)
    print(f"wrote {args.out}: {len(rows)} views x {len(args.frames)} frames")


if __name__ == "__main__":
    main()
