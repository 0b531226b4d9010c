"""Camera accuracy as the camera-control papers report it: relative poses estimated from the views, against the
requested ones.

Estimation (``--pose-estimator``), always with the scene's intrinsics held fixed:

- ``colmap`` (default): one reconstruction of all views, as the papers run COLMAP / GLOMAP on their generated videos.
  Each view is one image whose keypoints are the endpoints of its matches with every other view (matches of all
  sampled frames pooled for static cameras; one frame for moving ones), merged within ``DISTINCT_PX``. Each pair's
  matches are verified by COLMAP's calibrated two-view geometry, then COLMAP's incremental mapper
  (``pycolmap.incremental_mapping``) registers the views and bundle-adjusts them all together. A pair's pose is the
  relative pose of its two registered views, so a view seen well by two others is pinned by both.
- ``colmap-pairs``: one calibrated two-view fit per pair (``pycolmap.estimate_calibrated_two_view_geometry``:
  LO-RANSAC on the essential matrix, then a cheirality check on triangulated points).
- ``opencv``: one two-view fit per pair with OpenCV's ``findEssentialMat`` (MAGSAC++) and ``recoverPose``.

Why the joint reconstruction (benchmarks/RESULTS.md, "Evaluation on ground truth"): on held-out renders the two-view
fits of SIFT matches can miss the true rotation by more than a degree although the true matches lie a fraction of a
pixel from their true positions. The matches crowd onto the floor, a nearly planar structure that leaves each pair's
essential matrix ill-conditioned, and their small errors are correlated (a blob's centre seen from two sides), so a
pair's fit drifts more than resampling it shows. Registering every view in one bundle adjustment, where a view is
pinned by several pairs, removes most of that error.

COLMAP and OpenCV put pixel centres at half-integers, as the project does (:mod:`syncammaster.cameras`), so points
are passed unchanged to COLMAP and shifted by half a pixel for OpenCV. A pose is kept only when it is stable: its
rotation moves by at most ``MAX_POSE_SPREAD_DEG`` (median over ``BOOTSTRAP_SAMPLES`` resamples; a resample without a
pose counts as an infinite move) when it is estimated again from resampled data. The reconstruction is rerun on each
verified pair's matches drawn with replacement (a match drawn twice counts once), verified again; a pairwise fit is
refitted on its inliers drawn with replacement. Matches on a dominant plane, far from the cameras or on a repetitive
texture satisfy a family of poses; the resampled estimates then scatter by degrees and the pose is "n/a" (not
estimated), which the scene's coverage counts. A pair joins the reconstruction with at least ``MIN_POSE_INLIERS``
matches that COLMAP's two-view geometry verifies; a pairwise fit also needs COLMAP to call the geometry calibrated
(not degenerate, planar or better explained without the intrinsics).

Errors (CameraCtrl, He et al. 2024, section 4: RotErr, the geodesic angle arccos((tr(R_gen R_gt^T) - 1) / 2) between
generated and ground-truth rotations, summed there over a video's frames; TransErr, the L2 distance between
generated and ground-truth translations, with the estimated trajectory's scale normalised to the ground truth's
because structure from motion recovers translation only up to scale):

- ``rot_err_deg``: that angle between the estimated and the requested relative rotation, in degrees;
- ``trans_err``: the L2 distance between the estimated and the requested relative translation once both are scaled
  to unit length. A pair's relative translation is known only up to scale, so the normalisation makes the requested
  baseline the unit; the value lies in [0, 2] and equals 2 sin(theta / 2) for the angle theta between the directions;
- ``trans_err_deg``: theta itself, the scale-free form usual for two-view poses.

Per scene they are averaged over the pairs whose pose was estimated (the papers sum over frames; a mean keeps scenes
with different view counts comparable), and reported beside the share of pairs estimated.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..cameras import Intrinsics
from .matching import DISTINCT_PX

ESTIMATORS = ("colmap", "colmap-pairs", "opencv")
DEFAULT_ESTIMATOR = "colmap"
MIN_POSE_INLIERS = 12  # as MIN_VERIFIED_MATCHES: a smaller consensus proves little (see matching)
BOOTSTRAP_SAMPLES = 8
MAX_POSE_SPREAD_DEG = 0.5  # median rotation change of the resampled fits above which a pose counts as not estimated
POSE_SEED = 0
POSE_CONFIDENCE = 0.999
POSE_MAX_TRIALS = 10_000  # as the MAGSAC++ verification of the matches; matches without a consensus stop here
# The joint reconstruction's mapper. COLMAP's defaults are tuned for photo collections of 1000 px and more; views of
# 128-256 px hold tens to hundreds of matches per pair, so the first pair needs fewer inliers and a smaller
# triangulation angle, and a view registers from MIN_POSE_INLIERS 2D-3D matches. Reprojection limits follow the
# 1 px inlier threshold of the two-view fits.
INIT_MIN_INLIERS = 30
INIT_MIN_TRIANGULATION_DEG = 4.0
MAX_REPROJECTION_PX = 2.0


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




Pairs = Mapping[tuple[int, int], tuple[np.ndarray, np.ndarray]]  # (a, b) -> matches (N, 2) <-> (N, 2), in pixels


class PoseEstimator:
    """Relative poses of every view pair: one COLMAP reconstruction of all views (``"colmap"``, the default), or one
    two-view fit per pair with COLMAP (``"colmap-pairs"``) or OpenCV (``"opencv"``); see the module docstring."""

    def __init__(self, method: str = DEFAULT_ESTIMATOR, max_error_px: float = 1.0):
        if method not in ESTIMATORS:
            raise PoseError(f"unknown pose estimator {method!r}; use one of {', '.join(ESTIMATORS)}")
        if method.startswith("colmap"):
            try:
                import pycolmap  # noqa: F401
            except ImportError:
                raise PoseError("the colmap pose estimators need pycolmap; pip install 'pycolmap>=4,<5' or use "
                                "--pose-estimator opencv") from None
        self.method, self.max_error_px = method, max_error_px

    def describe(self) -> str:
        library = {"colmap": "one COLMAP reconstruction of all views, intrinsics fixed (pycolmap)",
                   "colmap-pairs": "COLMAP two-view geometry per pair (pycolmap)",
                   "opencv": "OpenCV essential matrix per pair"}[self.method]
        return (f"{library}, {self.max_error_px:g} px, >= {MIN_POSE_INLIERS} inliers, stable to "
                f"{MAX_POSE_SPREAD_DEG:g} deg over {BOOTSTRAP_SAMPLES} resamples")

    # ------------------------------------------------------------------ every pair

    def estimate_views(
        self, pairs: Pairs, intrinsics: Intrinsics, names: Sequence[str]
    ) -> dict[tuple[int, int], PoseEstimate]:
        """The pose b_from_a of every pair (a, b) of ``pairs`` (indices into the views ``names``) from its matches,
        gated as in the module docstring."""
        num_views = len(names)
        if self.method != "colmap":
            return {pair: self.estimate(*points, intrinsics) for pair, points in pairs.items()}
        camera = _colmap_camera(intrinsics)
        keypoints, ids = _view_keypoints(pairs, num_views)
        geometries = {(a, b): _colmap_two_view(camera, keypoints[a], keypoints[b], m, self.max_error_px, POSE_SEED)
                      for (a, b), m in ids.items()}
        usable = {pair: geometry for pair, geometry in geometries.items() if _usable(geometry)}
        poses = self._reconstruct(camera, keypoints, usable, POSE_SEED)
        # Resamples of the usable pairs' matches, verified and reconstructed again (the other pairs cannot register
        # a view). A match drawn twice counts once, as in the matches themselves.
        rng = np.random.default_rng(POSE_SEED)
        moves: dict[tuple[int, int], list[float]] = {pair: [] for pair in pairs}
        for sample in range(BOOTSTRAP_SAMPLES if len(poses) >= 2 else 0):
            seed = POSE_SEED + 1 + sample
            drawn = {}
            for a, b in usable:
                matches = ids[(a, b)]
                matches = np.unique(matches[rng.integers(0, len(matches), len(matches))], axis=0)
                drawn[(a, b)] = _colmap_two_view(camera, keypoints[a], keypoints[b], matches, self.max_error_px, seed)
            again = self._reconstruct(camera, keypoints, {pair: g for pair, g in drawn.items() if _usable(g)}, seed)
            for a, b in pairs:
                if {a, b} <= poses.keys():
                    moved = math.inf
                    if {a, b} <= again.keys():
                        moved = rotation_angle_deg(_relative(again, a, b)[0] @ _relative(poses, a, b)[0].T)
                    moves[(a, b)].append(moved)
        estimates = {}
        for (a, b), geometry in geometries.items():
            inliers = len(geometry.inlier_matches)
            missing = [v for v in (a, b) if v not in poses]
            if missing:
                reason = ("COLMAP registered no views" if not poses else
                          f"{' and '.join(names[v] for v in missing)} not registered in the reconstruction")
                estimates[(a, b)] = PoseEstimate(None, None, inliers, None, reason)
                continue
            spread = float(np.median(moves[(a, b)]))
            if spread > MAX_POSE_SPREAD_DEG:
                estimates[(a, b)] = PoseEstimate(
                    None, None, inliers, spread,
                    f"unstable: resampled reconstructions move {spread:.2f} deg (> {MAX_POSE_SPREAD_DEG:g})")
                continue
            rotation, translation = _relative(poses, a, b)
            estimates[(a, b)] = PoseEstimate(rotation, translation, inliers, spread, None)
        return estimates

    def _reconstruct(self, camera, keypoints: list[np.ndarray], geometries: dict, seed: int) -> dict:
        """{view: cam_from_world} of the views COLMAP's incremental mapper registers from the pairs' verified
        ``geometries`` (the largest model; empty if none)."""
        import pycolmap

        if not geometries:
            return {}
        options = pycolmap.IncrementalPipelineOptions()
        options.min_model_size = 2  # a scene has a handful of views, not COLMAP's photo collections
        options.min_num_matches = MIN_POSE_INLIERS
        options.multiple_models = False
        options.extract_colors = False
        options.num_threads = 1
        options.random_seed = seed
        options.ba_refine_focal_length = False  # the scene's intrinsics are given: never re-estimated
        options.ba_refine_principal_point = False
        options.ba_refine_extra_params = False
        mapper = options.mapper
        mapper.init_min_num_inliers = INIT_MIN_INLIERS
        mapper.init_min_tri_angle = INIT_MIN_TRIANGULATION_DEG
        mapper.init_max_error = self.max_error_px
        mapper.abs_pose_min_num_inliers = MIN_POSE_INLIERS
        mapper.abs_pose_max_error = MAX_REPROJECTION_PX
        mapper.abs_pose_refine_focal_length = False
        mapper.abs_pose_refine_extra_params = False
        mapper.filter_max_reproj_error = MAX_REPROJECTION_PX
        mapper.num_threads = 1
        mapper.random_seed = seed
        options.triangulation.ignore_two_view_tracks = False  # most points are seen by two views only
        with tempfile.TemporaryDirectory(prefix="syncammaster-poses-") as folder, _quiet_colmap():
            database_path = Path(folder) / "matches.db"
            database = pycolmap.Database.open(str(database_path))
            camera_id = database.write_camera(camera)
            image_ids = [database.write_image(pycolmap.Image(name=f"{v}", camera_id=camera_id))
                         for v in range(len(keypoints))]
            for v, points in enumerate(keypoints):
                database.write_keypoints(image_ids[v], points.astype(np.float32))
            for (a, b), geometry in geometries.items():
                database.write_matches(image_ids[a], image_ids[b], geometry.inlier_matches)
                database.write_two_view_geometry(image_ids[a], image_ids[b], geometry)
            database.close()
            models = pycolmap.incremental_mapping(str(database_path), folder, folder, options)
        if not models:
            return {}
        model = max(models.values(), key=lambda m: m.num_reg_images())
        return {int(image.name): image.cam_from_world() for image in model.images.values() if image.has_pose}

    # ------------------------------------------------------------------ one pair

    def _fit(self, points_a: np.ndarray, points_b: np.ndarray, intrinsics: Intrinsics, seed: int):
        """(R, unit t, inlier indices) or (None, None, reason)."""
        if len(points_a) < MIN_POSE_INLIERS:
            return None, None, f"{len(points_a)} matches, fewer than {MIN_POSE_INLIERS}"
        if self.method != "opencv":
            import pycolmap

            camera = _colmap_camera(intrinsics)
            index = np.arange(len(points_a), dtype=np.uint32)
            geometry = _colmap_two_view(camera, points_a, points_b, np.stack([index, index], axis=1),
                                        self.max_error_px, seed)
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
        """The pose b_from_a of one pair from N matches (N, 2) <-> (N, 2) in pixels (project convention) by a
        two-view fit (COLMAP's for ``"colmap"`` and ``"colmap-pairs"``), gated as in the module docstring."""
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


def _colmap_camera(intrinsics: Intrinsics):
    import pycolmap

    k = intrinsics
    return pycolmap.Camera(model="PINHOLE", width=k.width, height=k.height, params=[k.fx, k.fy, k.cx, k.cy])


def _colmap_two_view(camera, points_a: np.ndarray, points_b: np.ndarray, index: np.ndarray, max_error_px: float,
                     seed: int):
    """COLMAP's calibrated two-view geometry of keypoints (N, 2), (M, 2) and matches ``index`` (K, 2) of them."""
    import pycolmap

    options = pycolmap.TwoViewGeometryOptions()
    options.compute_relative_pose = True
    options.detect_watermark = False  # renders and generated views have no watermarks to discount
    options.min_num_inliers = MIN_POSE_INLIERS
    options.ransac.max_error = max_error_px
    options.ransac.confidence = POSE_CONFIDENCE
    options.ransac.random_seed = seed
    options.ransac.max_num_trials = POSE_MAX_TRIALS
    return pycolmap.estimate_calibrated_two_view_geometry(
        camera, np.ascontiguousarray(points_a, dtype=np.float64), camera,
        np.ascontiguousarray(points_b, dtype=np.float64), np.ascontiguousarray(index, dtype=np.uint32), options)


def _usable(geometry) -> bool:
    """Whether a pair's two-view geometry joins the reconstruction: at least ``MIN_POSE_INLIERS`` inliers of a
    geometry COLMAP found (an essential matrix, a homography, or a fundamental matrix where the essential matrix
    explains fewer matches, as near-planar matches often give), as COLMAP's own matcher would write it."""
    import pycolmap

    kinds = pycolmap.TwoViewGeometryConfiguration
    found = (kinds.CALIBRATED, kinds.UNCALIBRATED, kinds.PLANAR, kinds.PANORAMIC, kinds.PLANAR_OR_PANORAMIC)
    return kinds(geometry.config) in found and len(geometry.inlier_matches) >= MIN_POSE_INLIERS


def _view_keypoints(pairs: Pairs, num_views: int) -> tuple[list[np.ndarray], dict[tuple[int, int], np.ndarray]]:
    """Each view's keypoints, the endpoints of its matches in every pair merged within ``DISTINCT_PX`` ((K_v, 2)
    each), and each pair's matches as distinct (M, 2) uint32 keypoint indices into its two views."""
    found: list[list[np.ndarray]] = [[] for _ in range(num_views)]
    for (a, b), (points_a, points_b) in pairs.items():
        found[a].append(points_a)
        found[b].append(points_b)
    keypoints, lookup = [], []
    for points in found:
        points = np.concatenate(points) if points else np.zeros((0, 2))
        index, kept = np.empty(len(points), dtype=np.int64), []
        for n, point in enumerate(points):
            if kept:
                distance = np.abs(points[kept] - point).max(axis=1)
                nearest = int(np.argmin(distance))
                if distance[nearest] < DISTINCT_PX:
                    index[n] = nearest
                    continue
            index[n] = len(kept)
            kept.append(n)
        keypoints.append(points[kept].reshape(-1, 2))
        lookup.append(index)
    offsets = [0] * num_views
    ids = {}
    for (a, b), (points_a, _) in pairs.items():
        count = len(points_a)
        ids_a = lookup[a][offsets[a]:offsets[a] + count]
        ids_b = lookup[b][offsets[b]:offsets[b] + count]
        offsets[a] += count
        offsets[b] += count
        ids[(a, b)] = np.unique(np.stack([ids_a, ids_b], axis=1), axis=0).astype(np.uint32).reshape(-1, 2)
    return keypoints, ids


def _relative(poses: dict, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """(R, unit t) of b_from_a from two registered cam_from_world poses."""
    pose = poses[b] * poses[a].inverse()
    translation = np.asarray(pose.translation, dtype=np.float64)
    return pose.rotation.matrix(), translation / np.linalg.norm(translation)


@contextlib.contextmanager
def _quiet_colmap() -> Iterator[None]:
    """COLMAP logs every mapper step to stderr; evaluate prints its own table."""
    import pycolmap

    level = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = 3  # glog's FATAL: nothing below it
    try:
        yield
    finally:
        pycolmap.logging.minloglevel = level
