"""Drawing a camera rig: a 3D PNG of its frustums (``CameraRig.plot``, ``generate``'s rig.png, ``syncammaster cameras
--plot``). The web app draws the same frustums with plotly (``syncammaster.ui``).

A leaf below :mod:`syncammaster.cameras`: it uses a rig through its methods and imports nothing of the package, so
``CameraRig.plot`` can call it without an import circle."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np


def plot_rig(rig, path: str | Path | BinaryIO, title: str | None = None) -> None:
    """Save a 3D PNG of the frustums of ``rig`` (a ``CameraRig``; frame 0, centre paths for a per-frame rig) to a path
    or binary file.

    The world is drawn in the rig's right-handed display frame (``CameraRig.display_frame``); the black edge of each
    frustum is the image's top, a dotted line the optical axis to the subject when it is known. ``title`` defaults
    to the rig's summary line.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    flip, axis_names = rig.display_frame()
    c2w = rig.c2w_at(0)  # (V, 4, 4)
    centres = c2w[:, :3, 3]  # (V, 3)
    points = [centres] if rig.subject is None else [centres, rig.subject[None]]
    if not rig.is_static:
        points.append(rig.c2w[:, :, :3, 3].reshape(-1, 3))
    all_points = np.concatenate(points) @ flip.T  # (N, 3) display coordinates
    lo, hi = all_points.min(0), all_points.max(0)
    extent = max(float((hi - lo).max()), 0.5)
    depth = 0.15 * extent  # frustum length along the optical axis
    frustums = rig.frustum_corners(depth) @ flip.T  # (V, 4, 3) display coordinates

    fig = Figure(figsize=(7, 6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(projection="3d")
    colors = [f"C{v % 10}" for v in range(rig.num_views)]
    for v, name in enumerate(rig.names):
        rotation, centre = c2w[v, :3, :3], c2w[v, :3, 3]
        corners = frustums[v]  # (4, 3)
        apex = centre @ flip.T  # (3,)
        for corner in corners:
            ax.plot(*np.stack([apex, corner]).T, color=colors[v], linewidth=1.0)
        outline = np.concatenate([corners, corners[:1]])  # (5, 3) closed image-plane outline
        ax.plot(*outline.T, color=colors[v], linewidth=1.0)
        ax.plot(*corners[:2].T, color="black", linewidth=3.0)  # the image's top ("up") edge
        if rig.subject is not None:
            axis = rotation[:, 2] / np.linalg.norm(rotation[:, 2])
            reach = max(float((rig.subject - centre) @ axis), depth)
            ax.plot(*np.stack([apex, (centre + reach * axis) @ flip.T]).T, color=colors[v], linestyle=":")
        if not rig.is_static:
            ax.plot(*(rig.c2w[v, :, :3, 3] @ flip.T).T, color=colors[v], linestyle="--", linewidth=0.8)
        ax.text(*apex, f" {name}", color=colors[v], fontsize=8)
    if rig.subject is not None:
        ax.scatter(*(rig.subject @ flip.T), color="red", marker="*", s=120, label="subject")
        ax.legend(loc="upper right")

    # Equal scaling on all three axes: a cube around the drawn points.
    mid = (lo + hi) / 2
    half = 0.5 * extent + depth
    ax.set_xlim(mid[0] - half, mid[0] + half)
    ax.set_ylim(mid[1] - half, mid[1] + half)
    ax.set_zlim(mid[2] - half, mid[2] + half)
    ax.set_box_aspect((1, 1, 1))
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.set_zlabel(axis_names[2])
    ax.view_init(elev=20, azim=-155)  # from behind and above, as for UE (X forward, -Y left, Z up)
    ax.set_title(title if title is not None else repr(rig), fontsize=9)
    fig.savefig(path, format="png", dpi=120)
