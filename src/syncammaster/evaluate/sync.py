"""Temporal synchronization across views from motion-energy curves.

Method: each view's motion-energy curve is the mean absolute difference of consecutive grey frames,
e_v(t) = mean |I_v(t + 1) - I_v(t)| for t = 0 .. T-2 (in [0, 1]). Views of one synchronized scene see the same
events at the same time (an object starts, stops, bounces), so their curves rise and fall together even though
each view sees the motion at its own scale. For each pair of views the score is the Pearson correlation of the two
curves at lag 0, and the lag in [-L, L] frames (L = ``max_lag``) at which the correlation peaks: a synchronized pair
peaks at lag 0; a pair where one view runs ahead of the other peaks at that offset. A view whose curve is flat
(standard deviation under ``FLAT_MOTION``: nothing moves, or everything moves evenly) carries no timing information
and gets no score (None).
"""

from __future__ import annotations

import numpy as np

DEFAULT_MAX_LAG = 4
FLAT_MOTION = 1e-4  # standard deviation of a motion-energy curve below which it carries no timing
MIN_OVERLAP = 4  # fewest curve samples a lagged correlation is computed on


def motion_energy(video: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 video -> (T - 1,) float64 mean absolute difference of consecutive grey frames."""
    # Frame by frame, so a long high-resolution video never exists in floating point all at once.
    energy, previous = np.empty(max(len(video) - 1, 0)), None
    for t, frame in enumerate(video):
        grey = frame.astype(np.float32).mean(axis=-1) / np.float32(255.0)  # (H, W)
        if previous is not None:
            energy[t - 1] = np.abs(grey - previous).mean(dtype=np.float64)
        previous = grey
    return energy


def first_frame_jump(video: np.ndarray) -> float | None:
    """(T, H, W, C) video, uint8 or float in any range -> the change from frame 0 to frame 1 over the mean change
    between later neighbouring frames (mean absolute differences over pixels and channels).

    About 1 when frame 0 belongs with the rest (static cameras, smooth motion); higher when frame 0 is coded apart,
    as the causal Wan VAE codes it alone. None with fewer than 3 frames or when the later frames do not change.
    """
    steps = np.array([np.abs(video[t + 1].astype(np.float32) - video[t].astype(np.float32)).mean(dtype=np.float64)
                      for t in range(len(video) - 1)])  # (T - 1,)
    later = steps[1:].mean() if len(steps) > 1 else 0.0
    return float(steps[0] / later) if later > 0 else None


def _correlation(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < MIN_OVERLAP or x.std() < FLAT_MOTION or y.std() < FLAT_MOTION:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def lagged_correlation(curve_a: np.ndarray, curve_b: np.ndarray, lag: int) -> float | None:
    """Pearson correlation of a(t) with b(t + lag) over the frames both cover; None if too short or flat."""
    if lag >= 0:
        return _correlation(curve_a[: len(curve_a) - lag], curve_b[lag:])
    return _correlation(curve_a[-lag:], curve_b[: len(curve_b) + lag])


def sync_score(curve_a: np.ndarray, curve_b: np.ndarray, max_lag: int = DEFAULT_MAX_LAG) -> dict:
    """Correlation at lag 0 and the best lag of two motion-energy curves (see the module docstring).

    Returns:
        ``corr``: correlation at lag 0 (None when a curve is flat); ``best_lag``: the lag in frames with the highest
        correlation (None when none is defined; positive: view b lags behind view a); ``best_corr``: that
        correlation; ``flat``: whether either curve is flat.
    """
    flat = bool(curve_a.std() < FLAT_MOTION or curve_b.std() < FLAT_MOTION)
    max_lag = max(0, min(max_lag, len(curve_a) - MIN_OVERLAP))
    scores = {lag: lagged_correlation(curve_a, curve_b, lag) for lag in range(-max_lag, max_lag + 1)}
    defined = {lag: c for lag, c in scores.items() if c is not None}
    # Prefer the smaller |lag| on ties so a perfectly flat-topped peak reads as synchronized.
    best_lag = max(defined, key=lambda lag: (defined[lag], -abs(lag))) if defined else None
    return {
        "corr": scores.get(0),
        "best_lag": best_lag,
        "best_corr": defined[best_lag] if best_lag is not None else None,
        "flat": flat,
    }
