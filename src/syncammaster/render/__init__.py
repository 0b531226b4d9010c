"""Procedural multi-camera world: toy training data in the SynCamVideo layout
(docs/architecture.md, section 3).

``sample_scene`` draws what is in a scene (:mod:`.world`), ``sample_cameras`` its cameras (:mod:`.rig`),
``render_views`` ray-casts every view (:mod:`.raycast`) and ``render_dataset`` writes scene folders and
``metadata.csv`` (:mod:`.dataset`, also the ``syncammaster render`` command).
"""

from .dataset import add_render_arguments, render_dataset, run_render, scene_seed
from .raycast import render_views
from .rig import LOOK_AT, project_points, sample_cameras, ue_camera_rows
from .world import PALETTE, SceneSpec, object_poses, sample_scene

__all__ = [
    "LOOK_AT",
    "PALETTE",
    "SceneSpec",
    "add_render_arguments",
    "object_poses",
    "project_points",
    "render_dataset",
    "render_views",
    "run_render",
    "sample_cameras",
    "sample_scene",
    "scene_seed",
    "ue_camera_rows",
]
