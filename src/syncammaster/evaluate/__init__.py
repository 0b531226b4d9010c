"""Cross-view consistency and quality metrics of scene folders (the ``syncammaster evaluate`` command).

``evaluate_scene`` scores feature matches between views against the epipolar geometry of the scene's cameras
(:mod:`.consistency`, :mod:`.geometry`, :mod:`.matching`) and the views' temporal synchronization (:mod:`.sync`);
``ClipScorer`` adds CLIP-T / CLIP-F / CLIP-V from a local CLIP folder (:mod:`.clip`); ``colour_presence`` checks
which of the procedural world's object colours a view shows (:mod:`.colour`); :mod:`.report` prints and writes the
results.
"""

from .colour import colour_presence, colour_shares
from .consistency import (
    EvaluationError,
    EvaluationSettings,
    SceneEvaluation,
    evaluate_scene,
    evaluate_scene_dir,
    sample_frames,
    summarize,
)
from .geometry import GeometryError, epipolar_distances, fundamental_from_cameras
from .matching import SiftMatcher
from .sync import first_frame_jump, motion_energy, sync_score

__all__ = [
    "EvaluationError",
    "EvaluationSettings",
    "GeometryError",
    "SceneEvaluation",
    "SiftMatcher",
    "colour_presence",
    "colour_shares",
    "epipolar_distances",
    "evaluate_scene",
    "evaluate_scene_dir",
    "first_frame_jump",
    "fundamental_from_cameras",
    "motion_energy",
    "sample_frames",
    "summarize",
    "sync_score",
]
