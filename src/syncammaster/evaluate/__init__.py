"""Cross-view consistency and quality metrics of scene folders (the ``syncammaster evaluate`` command).

``evaluate_scene`` scores feature matches between views against the epipolar geometry of the scene's cameras
(:mod:`.consistency`, :mod:`.geometry`, :mod:`.matching`), the relative poses estimated from the views against the
requested ones (RotErr / TransErr, :mod:`.poses`) and the views' temporal synchronization (:mod:`.sync`);
:mod:`.controls` makes the wrong-camera controls a measure must score worse;
``ClipScorer`` adds CLIP-T / CLIP-F / CLIP-V from a local CLIP folder (:mod:`.clip`) and ``FvdScorer`` FVD-V from a
local TorchScript video network (:mod:`.fvd`); ``colour_presence`` checks
which of the procedural world's object colours a view shows (:mod:`.colour`); :mod:`.report` prints and writes the
results.
"""

from .colour import colour_presence, colour_shares
from .consistency import (
    CHANCE_FRACTION,
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
from .poses import PoseError, PoseEstimate, PoseEstimator, pose_errors, relative_pose, rotation_angle_deg
from .sync import first_frame_jump, motion_energy, sync_score

__all__ = [
    "CHANCE_FRACTION",
    "EvaluationError",
    "EvaluationSettings",
    "GeometryError",
    "PoseError",
    "PoseEstimate",
    "PoseEstimator",
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
    "pose_errors",
    "relative_pose",
    "rotation_angle_deg",
    "sample_frames",
    "summarize",
    "sync_score",
]
