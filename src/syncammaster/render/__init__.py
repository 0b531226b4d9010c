"""Procedural multi-camera world: toy training data in the SynCamVideo layout
(docs/architecture.md, section 3).

``sample_scene`` draws what is in a scene (:mod:`.world`), ``sample_cameras`` its cameras (:mod:`.rig`),
``render_views`` ray-casts every view (:mod:`.raycast`) and ``render_dataset`` writes scene folders and
``metadata.csv`` (:mod:`.dataset`, what the ``syncammaster render`` command writes).
"""

from .dataset import render_dataset, render_missing_scenes, scene_seed
from .raycast import render_views
from .rig import LOOK_AT, project_points, sample_cameras, ue_camera_rows
from .world import PALETTE, SceneSpec, object_poses, sample_scene

__all__ = [
    "LOOK_AT",
    "PALETTE",
    "SceneSpec",
    "object_poses",
    "project_points",
    "render_dataset",
    "render_missing_scenes",
    "render_views",
    "sample_cameras",
    "sample_scene",
    "scene_seed",
    "ue_camera_rows",
]
