"""Feature matches between two views at the same time step: OpenCV SIFT, Lowe's ratio test, mutual nearest
neighbours, then two fits of a fundamental matrix to the matches themselves: RANSAC inliers (the "matched pixels"
count) and the geometric verification behind the consistency headline (a MAGSAC++ consensus of at least
``MIN_VERIFIED_MATCHES``).

OpenCV places pixel centres at integer coordinates; the project places them at (j + 0.5, i + 0.5)
(:mod:`syncammaster.cameras`), so keypoints are shifted by half a pixel on the way out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .local import load_local

DEFAULT_RATIO = 0.8  # Lowe's ratio test threshold (his paper's value)
# OpenCV's default contrast threshold (0.04) is tuned for photographs; renders and generated views at 128-256 px are
# low in contrast, and 0.01 gives more than twice the distinct verified matches there (4 held-out renders of seed 9000,
# 4 cameras, 9 frames at 128 px: 296 against 122, 7 of 24 pairs scored against 4), which the ratio test and
# verification keep honest.
SIFT_CONTRAST_THRESHOLD = 0.01
# Matches pooled over the sampled frames of static cameras repeat: the same background point matches at the same
# pixels in every frame. Matches within this distance in both views count once.
DISTINCT_PX = 1.0
DEFAULT_RANSAC_PX = 1.0  # inlier threshold of the fundamental matrix fitted to the matches themselves
MIN_MATCHES_FOR_RANSAC = 8  # the eight-point minimum of a fundamental matrix fit
RANSAC_CONFIDENCE = 0.999
RANSAC_SEED = 0  # OpenCV's RANSAC draws from the global RNG; seeding it makes scores repeatable
RANSAC_MAX_ITERATIONS = 1_000  # OpenCV's default for the RANSAC fit
# Geometric verification: the matches of one frame pair count as verified when a fundamental matrix fitted to them by
# MAGSAC++ is supported by at least this many of them. A fundamental matrix has 7 degrees of freedom and is fitted
# from 7 matches, so a small consensus proves little: repetitive textures (a brick wall) give sets of 8-11 false
# matches that one wrong geometry explains. On 16 procedural renders (seeds 9000 and 9100, 4 cameras, 211 frame
# pairs) a quarter of the consensus sets under 12 matches lay over a pixel from the true epipolar lines; none of the
# 93 sets of 12 or more did.
MIN_VERIFIED_MATCHES = 12
MAGSAC_MAX_ITERATIONS = 10_000


@dataclass
class Features:
    """SIFT keypoints of one frame: (N, 2) float64 pixel positions (project convention) and (N, 128) descriptors."""

    points: np.ndarray
    descriptors: np.ndarray


@dataclass
class Matches:
    """Matches of one view pair at one time step.

    Attributes:
        points_a, points_b: (N, 2) pixel positions of the N ratio-test matches in the two views.
        inliers: (N,) bool, matches consistent with a fundamental matrix fitted by RANSAC to the matches alone
            (all False when there are fewer than eight matches).
        verified: (N,) bool, the consensus of a fundamental matrix fitted by MAGSAC++ to the matches alone, when it
            holds at least ``MIN_VERIFIED_MATCHES`` of them (else all False): matches that one rigid two-view
            geometry explains, whatever the requested cameras are.
    """

    points_a: np.ndarray
    points_b: np.ndarray
    inliers: np.ndarray
    verified: np.ndarray

    @property
    def matched_pixels(self) -> int:
        """Distinct pixels of view a holding a RANSAC-inlier match (the paper's "matched pixels", SIFT-based)."""
        if not self.inliers.any():
            return 0
        pixels = np.floor(self.points_a[self.inliers]).astype(np.int64)  # (M, 2) column, row
        return len(np.unique(pixels, axis=0))


class SiftMatcher:
    """Detects SIFT features on RGB frames and matches them with Lowe's ratio test."""

    def __init__(self, ratio: float = DEFAULT_RATIO, ransac_px: float = DEFAULT_RANSAC_PX):
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"the ratio test threshold must be in (0, 1], got {ratio}")
        if not ransac_px > 0.0:
            raise ValueError(f"the RANSAC threshold must be a positive number of pixels, got {ransac_px}")
        self.ratio = ratio
        self.ransac_px = ransac_px
        self._sift = cv2.SIFT_create(contrastThreshold=SIFT_CONTRAST_THRESHOLD)
        self._matcher = cv2.BFMatcher(cv2.NORM_L2)

    def detect(self, frame: np.ndarray) -> Features:
        """SIFT features of one (H, W, 3) uint8 RGB frame."""
        gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
        keypoints, descriptors = self._sift.detectAndCompute(gray, None)
        points = np.array([kp.pt for kp in keypoints], dtype=np.float64).reshape(-1, 2) + 0.5  # -> pixel centres
        if descriptors is None:
            descriptors = np.zeros((0, 128), dtype=np.float32)
        return Features(points, descriptors)

    def match(self, a: Features, b: Features) -> Matches:
        """Matches a -> b passing the ratio test that are also mutual nearest neighbours, with their RANSAC inliers
        and verified consensus (``fit_matches``)."""
        pairs: list[tuple[int, int]] = []
        if len(a.points) >= 1 and len(b.points) >= 2:
            # b's nearest neighbour in a, to keep only mutual nearest neighbours.
            backward = {m[0].queryIdx: m[0].trainIdx for m in self._matcher.knnMatch(b.descriptors, a.descriptors, k=1)}
            for best in self._matcher.knnMatch(a.descriptors, b.descriptors, k=2):
                if len(best) < 2 or best[0].distance >= self.ratio * best[1].distance:
                    continue
                if backward.get(best[0].trainIdx) == best[0].queryIdx:
                    pairs.append((best[0].queryIdx, best[0].trainIdx))
        index = np.array(pairs, dtype=np.int64).reshape(-1, 2)
        return fit_matches(a.points[index[:, 0]], b.points[index[:, 1]], self.ransac_px)

    def describe(self) -> str:
        return (f"OpenCV SIFT (contrast threshold {SIFT_CONTRAST_THRESHOLD:g}), ratio {self.ratio:g}, mutual nearest "
                "neighbours")


def fit_matches(points_a: np.ndarray, points_b: np.ndarray, ransac_px: float) -> Matches:
    """Matches (N, 2) <-> (N, 2) with their RANSAC inliers and their verified consensus (see ``Matches``)."""
    inliers = _fundamental_consensus(points_a, points_b, cv2.FM_RANSAC, ransac_px, RANSAC_MAX_ITERATIONS)
    verified = _fundamental_consensus(points_a, points_b, cv2.USAC_MAGSAC, ransac_px, MAGSAC_MAX_ITERATIONS)
    if verified.sum() < MIN_VERIFIED_MATCHES:
        verified[:] = False
    return Matches(points_a, points_b, inliers, verified)


def distinct_matches(points_a: np.ndarray, points_b: np.ndarray, tolerance_px: float = DISTINCT_PX) -> np.ndarray:
    """(N,) int: for each match (N, 2) <-> (N, 2), the index of the first match that lies within ``tolerance_px`` of
    it in both views (itself if none does); ``np.unique`` of it lists the distinct matches."""
    first = np.arange(len(points_a))
    kept: list[int] = []
    for n in range(len(points_a)):
        if kept:
            near = (np.abs(points_a[kept] - points_a[n]).max(axis=1) < tolerance_px) & (
                np.abs(points_b[kept] - points_b[n]).max(axis=1) < tolerance_px)
            if near.any():
                first[n] = kept[int(np.argmax(near))]
                continue
        kept.append(n)
    return first


def _fundamental_consensus(
    points_a: np.ndarray, points_b: np.ndarray, method: int, threshold_px: float, max_iterations: int
) -> np.ndarray:
    """(N,) bool: the matches a fundamental matrix fitted to them by ``method`` keeps; all False if none fits."""
    consensus = np.zeros(len(points_a), dtype=bool)
    if len(points_a) < MIN_MATCHES_FOR_RANSAC:
        return consensus
    cv2.setRNGSeed(RANSAC_SEED)
    try:
        _, mask = cv2.findFundamentalMat(points_a, points_b, method, threshold_px, RANSAC_CONFIDENCE, max_iterations)
    except cv2.error:  # OpenCV's USAC asserts instead of returning no model on some degenerate point sets
        return consensus
    if mask is not None and len(mask) == len(points_a):
        consensus = mask.ravel().astype(bool)
    return consensus


class MatcherError(ValueError):
    """A learned matcher whose weights are missing or unusable."""


class LearnedMatcher:
    """A learned keypoint matcher from transformers (LightGlue, SuperGlue, EfficientLoFTR) in a local folder.

    The folder is what ``AutoModelForKeypointMatching`` and its image processor's ``save_pretrained`` write (for
    example a local copy of ETH-CVG/lightglue_superpoint). Frames are matched in pairs, so ``detect`` only passes the
    frame through; ``match`` runs the model on both frames and keeps matches scoring above ``threshold`` (0: the
    model's own filter).
    """

    def __init__(self, model_dir: str | Path, device: str = "cpu", threshold: float = 0.0,
                 ransac_px: float = DEFAULT_RANSAC_PX):
        from transformers import AutoImageProcessor, AutoModelForKeypointMatching

        def load(folder: Path):
            return (
                AutoImageProcessor.from_pretrained(folder, local_files_only=True),
                AutoModelForKeypointMatching.from_pretrained(folder, local_files_only=True),
            )

        fix = "pass --matcher DIR, a local folder saved by AutoModelForKeypointMatching and its image processor"
        self.processor, self.model = load_local(model_dir, load, MatcherError, "matcher", fix)
        self.model = self.model.to(device).eval()
        self.device, self.threshold, self.ransac_px = device, threshold, ransac_px
        self.name = f"{type(self.model).__name__} from {Path(model_dir)}"

    def detect(self, frame: np.ndarray) -> np.ndarray:
        return frame

    def match(self, a: np.ndarray, b: np.ndarray) -> Matches:
        import torch

        size = a.shape[:2]  # (H, W)
        inputs = self.processor(images=[[a, b]], return_tensors="pt").to(self.device)
        with torch.no_grad():
            outputs = self.model(**inputs)
        result = self.processor.post_process_keypoint_matching(outputs, [[size, size]], threshold=self.threshold)[0]
        # Keypoints come as pixel indices (centres on integers); the project puts centres at +0.5.
        points_a = result["keypoints0"].cpu().numpy().astype(np.float64).reshape(-1, 2) + 0.5
        points_b = result["keypoints1"].cpu().numpy().astype(np.float64).reshape(-1, 2) + 0.5
        return fit_matches(points_a, points_b, self.ransac_px)

    def describe(self) -> str:
        return self.name
