"""Camera accuracy as the camera-control papers report it: relative poses estimated from the views, against the
requested ones.

Estimation. For one pair of views, the pose of view b relative to view a (``b_from_a``: X_b = R X_a + t) comes from
their matches and the scene's intrinsics by a calibrated two-view fit: COLMAP's (``pycolmap``
``estimate_calibrated_two_view_geometry``: LO-RANSAC on the essential matrix, then a cheirality check on triangulated
points), or OpenCV's ``findEssentialMat`` (MAGSAC++) and ``recoverPose``. COLMAP and OpenCV put pixel centres at
half-integers, as the project does (:mod:`syncammaster.cameras`), so points are passed unchanged to COLMAP and
shifted by half a pixel for OpenCV. A fit is kept only when COLMAP calls the geometry calibrated (not degenerate,
planar or better explained without the intrinsics) with at least ``MIN_POSE_INLIERS`` inliers, and when it is
stable: refitted on ``BOOTSTRAP_SAMPLES`` resamples of its inliers (drawn with replacement), the median rotation
moves by at most ``MAX_POSE_SPREAD_DEG``. Matches on a dominant plane (a floor) or far from the cameras satisfy the
epipolar constraint of a family of poses; the resampled fits then scatter by degrees and the pose is "n/a" (not
estimated), which the scene's coverage counts.

Errors (CameraCtrl, He et al. 2024, section 4: RotErr, the geodesic angle arccos((tr(R_gen R_gt^T) - 1) / 2) between
generated and ground-truth rotations, summed there over a video's frames; TransErr, the L2 distance between
generated and ground-truth translations, with the estimated trajectory's scale normalised to the ground truth's
because structure from motion recovers translation only up to scale):

- ``rot_err_deg``: that angle between the estimated and the requested relative rotation, in degrees;
- ``trans_err``: the L2 distance between the estimated and the requested relative translation once both are scaled
  to unit length. A two-view fit has one unknown scale per pair, so the normalisation makes the requested baseline
  the unit; the value lies in [0, 2] and equals 2 sin(theta / 2) for the angle theta between the directions;
- ``trans_err_deg``: theta itself, the scale-free form usual for two-view poses.

Per scene they are averaged over the pairs whose pose was estimated (the papers sum over frames; a mean keeps scenes
with different view counts comparable), and reported beside the share of pairs estimated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..cameras import Intrinsics

ESTIMATORS = ("colmap", "opencv")
DEFAULT_ESTIMATOR = "colmap"
MIN_POSE_INLIERS = 12  # as MIN_VERIFIED_MATCHES: a smaller consensus proves little (see matching)
BOOTSTRAP_SAMPLES = 8
MAX_POSE_SPREAD_DEG = 0.5  # median rotation change of the resampled fits above which a pose counts as not estimated
POSE_SEED = 0
POSE_CONFIDENCE = 0.999


class PoseError(ValueError):
    """An estimator that cannot run (unknown name, or COLMAP's bindings missing)."""


@dataclass
class PoseEstimate:
    """One pair's estimated pose, or why there is none.

    Attributes:
        rotation: (3, 3) R of b_from_a, or None.
        translation: (3,) unit t of b_from_a, or None.
        inliers: matches the fit kept.
        spread_deg: median rotation change of the resampled fits (inf where one failed), or None without a fit.
        reason: why there is no pose (None when there is one).
    """

    rotation: np.ndarray | None
    translation: np.ndarray | None
    inliers: int
    spread_deg: float | None
    reason: str | None

    @property
    def estimated(self) -> bool:
        return self.reason is None


def rotation_angle_deg(rotation: np.ndarray) -> float:
    """Angle of a (3, 3) rotation matrix, degrees: arccos((tr R - 1) / 2)."""
    return math.degrees(math.acos(float(np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0))))


def relative_pose(c2w_a: np.ndarray, c2w_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) of b_from_a for two (4, 4) camera-to-world matrices (OpenCV axes): X_b = R X_a + t."""
    b_from_a = np.linalg.inv(np.asarray(c2w_b, dtype=np.float64)) @ np.asarray(c2w_a, dtype=np.float64)
    return b_from_a[:3, :3], b_from_a[:3, 3]


def pose_errors(estimate: PoseEstimate, rotation: np.ndarray, translation: np.ndarray) -> dict:
    """RotErr and TransErr (module docstring) of an estimated pose against the requested (R, t); Nones without one."""
    if not estimate.estimated:
        return {"rot_err_deg": None, "trans_err": None, "trans_err_deg": None}
    rot_err = rotation_angle_deg(estimate.rotation @ rotation.T)
    norm = np.linalg.norm(translation)
    if norm == 0:  # cameras sharing a centre: the direction of the baseline is undefined
        return {"rot_err_deg": rot_err, "trans_err": None, "trans_err_deg": None}
    requested = translation / norm
    cosine = float(np.clip(requested @ estimate.translation, -1.0, 1.0))
    return {
        "rot_err_deg": rot_err,
        "trans_err": float(np.linalg.norm(estimate.translation - requested)),
        "trans_err_deg": math.degrees(math.acos(cosine)),
    }


class PoseEstimator:
    """Calibrated two-view pose fits with COLMAP (``"colmap"``, the default) or OpenCV (``"opencv"``)."""

    def __init__(self, method: str = DEFAULT_ESTIMATOR, max_error_px: float = 1.0):
        if method not in ESTIMATORS:
            raise PoseError(f"unknown pose estimator {method!r}; use one of {', '.join(ESTIMATORS)}")
        if method == "colmap":
            try:
                import pycolmap  # noqa: F401
            except ImportError:
                raise PoseError("the colmap pose estimator needs pycolmap; pip install 'pycolmap>=4,<5' or use "
                                "--pose-estimator opencv") from None
        self.method, self.max_error_px = method, max_error_px

    def describe(self) -> str:
        library = "COLMAP two-view geometry (pycolmap)" if self.method == "colmap" else "OpenCV essential matrix"
        return (f"{library}, {self.max_error_px:g} px, >= {MIN_POSE_INLIERS} inliers, stable to "
                f"{MAX_POSE_SPREAD_DEG:g} deg over {BOOTSTRAP_SAMPLES} resamples")

    def _fit(self, points_a: np.ndarray, points_b: np.ndarray, intrinsics: Intrinsics, seed: int):
        """(R, unit t, inlier indices) or (None, None, reason)."""
        if len(points_a) < MIN_POSE_INLIERS:
            return None, None, f"{len(points_a)} matches, fewer than {MIN_POSE_INLIERS}"
        if self.method == "colmap":
            import pycolmap

            camera = pycolmap.Camera(model="PINHOLE", width=intrinsics.width, height=intrinsics.height,
                                     params=[intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy])
            options = pycolmap.TwoViewGeometryOptions()
            options.compute_relative_pose = True
            options.detect_watermark = False  # renders and generated views have no watermarks to discount
            options.min_num_inliers = MIN_POSE_INLIERS
            options.ransac.max_error = self.max_error_px
            options.ransac.confidence = POSE_CONFIDENCE
            options.ransac.random_seed = seed
            index = np.arange(len(points_a), dtype=np.uint32)
            geometry = pycolmap.estimate_calibrated_two_view_geometry(
                camera, points_a, camera, points_b, np.stack([index, index], axis=1), options)
            config = pycolmap.TwoViewGeometryConfiguration(geometry.config)
            if config != pycolmap.TwoViewGeometryConfiguration.CALIBRATED or geometry.cam2_from_cam1 is None:
                return None, None, f"COLMAP found no calibrated geometry ({config.name.lower()})"
            pose = geometry.cam2_from_cam1
            translation = np.asarray(pose.translation, dtype=np.float64)
            return pose.rotation.matrix(), translation / np.linalg.norm(translation), geometry.inlier_matches[:, 0]
        # OpenCV: pixel centres at integers.
        cv2.setRNGSeed(seed)
        a, b = points_a - 0.5, points_b - 0.5
        K = intrinsics.K - np.array([[0.0, 0.0, 0.5], [0.0, 0.0, 0.5], [0.0, 0.0, 0.0]])
        essential, mask = cv2.findEssentialMat(a, b, K, cv2.USAC_MAGSAC, POSE_CONFIDENCE, self.max_error_px)
        if essential is None or essential.shape != (3, 3) or mask is None or mask.sum() < MIN_POSE_INLIERS:
            return None, None, "OpenCV found no essential matrix"
        kept, rotation, translation, mask = cv2.recoverPose(essential, a, b, K, mask=mask.copy())
        if kept < MIN_POSE_INLIERS:
            return None, None, f"{kept} inliers in front of both cameras, fewer than {MIN_POSE_INLIERS}"
        translation = translation.ravel()
        return rotation, translation / np.linalg.norm(translation), np.flatnonzero(mask.ravel())

    def estimate(self, points_a: np.ndarray, points_b: np.ndarray, intrinsics: Intrinsics) -> PoseEstimate:
        """The pose b_from_a from N matches (N, 2) <-> (N, 2) in pixels (project convention), gated as in the module
        docstring."""
        points_a = np.ascontiguousarray(points_a, dtype=np.float64).reshape(-1, 2)
        points_b = np.ascontiguousarray(points_b, dtype=np.float64).reshape(-1, 2)
        rotation, translation, inliers = self._fit(points_a, points_b, intrinsics, POSE_SEED)
        if rotation is None:
            return PoseEstimate(None, None, 0, None, inliers)
        rng = np.random.default_rng(POSE_SEED)
        moves = []
        for sample in range(BOOTSTRAP_SAMPLES):
            drawn = rng.choice(inliers, size=len(inliers), replace=True)
            again, _, _ = self._fit(points_a[drawn], points_b[drawn], intrinsics, POSE_SEED + 1 + sample)
            moves.append(rotation_angle_deg(again @ rotation.T) if again is not None else math.inf)
        spread = float(np.median(moves))
        if spread > MAX_POSE_SPREAD_DEG:
            return PoseEstimate(None, None, len(inliers), spread,
                                f"unstable: resampled fits move {spread:.2f} deg (> {MAX_POSE_SPREAD_DEG:g})")
        return PoseEstimate(rotation, translation, len(inliers), spread, None)
