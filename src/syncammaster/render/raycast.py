"""Vectorised ray casting of a procedural scene: every pixel of every frame of one camera at once (numpy, float32).

Surfaces: the floor (plane Z = 0), an optional cylindrical wall around the scene, the sky (no hit, depth inf), and the
objects (sphere, cube, cylinder; analytic intersections). Shading: the texture's albedo times ambient + Lambert
diffuse from a directional light; a shadow ray toward the light is tested against every object for each lit point.

Rays go through pixel centres: pixel (row i, column j) is ray (x, y, 1) in camera coordinates with
x = (j + 0.5 - cx) / fx, y = (i + 0.5 - cy) / fy (OpenCV axes, see syncammaster.cameras). The world direction is not
normalised, so the ray parameter t of a hit *is* its camera z: depth maps come straight from the hits.

Antialiasing: colour is the mean of s x s rays per pixel (``supersample``); depth is always that of the one ray
through the pixel centre, so it is exact where a surface covers the centre.

Textures are sharp, non-repeating mosaics from an integer hash of cell coordinates (two cell sizes mixed, plus round
dark speckles and light highlights at random places), evaluated in each surface's own coordinates (object-local for
objects, so the texture moves with them): SIFT finds true correspondences between views in them. A layer whose cells
get smaller than ~2 output pixels fades to its mean (a cheap level of detail), so distant texture does not alias into
noise.

One file: intersections, shadows, shading and textures share one vectorised layout of the rays (every pixel of every
frame at once).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cameras import CameraRig, Intrinsics
from .world import PALETTE, Material, SceneObject, SceneSpec, object_poses

__all__ = ["render_views"]

# Surface ids of a pixel: object k has id OBJECT_ID0 + k.
SKY_ID, FLOOR_ID, WALL_ID, OBJECT_ID0 = 0, 1, 2, 3

# Level of detail: a texture layer is at full contrast when its cells span >= LOD_FULL_PX pixels and fades out
# linearly to nothing at LOD_FULL_PX / 2.
LOD_FULL_PX = 2.0
# Texture mixing: coarse and fine cell values are mixed with these weights (they sum to 1).
COARSE_WEIGHT = 0.55
# Speckle: a disc of this radius (in speckle cells) around a random point of the cell, SPECKLE_SHADE times the
# surface colour. Highlights: light spots (the colour mixed HIGHLIGHT_MIX of the way to white) on a coarser grid.
SPECKLE_RADIUS = 0.22
SPECKLE_SHADE = 0.35
HIGHLIGHT_CELL_SCALE = 1.7
HIGHLIGHT_MIX = 0.6
# Object texture: brightness in [OBJECT_LOW, 1] of the palette colour, so "red" stays red.
OBJECT_LOW = 0.62
OBJECT_COARSE_CELL = 0.07
OBJECT_FINE_CELL = 0.03
OBJECT_SPECKLE_CELL = 0.07
OBJECT_SPECKLE_DENSITY = 0.35
# Dark objects get light speckles (a dark speckle would not show on them).
DARK_OBJECT_LUMA = 0.25
DARK_OBJECT_SPECKLE_RGB = (0.6, 0.6, 0.6)
# Aerial perspective of a floor that runs to the horizon: blend toward the horizon colour beyond FOG_START units
# (1 - exp(-(distance - FOG_START) / FOG_SCALE)).
FOG_START = 3.0
FOG_SCALE = 10.0
# Antialiasing: s x s rays per pixel. 2 x 2 smooths object edges and texture for about 4x the ray-casting time.
DEFAULT_SUPERSAMPLE = 2
# Shadow rays start this far off the surface (training units) so a surface does not shadow itself.
SHADOW_EPSILON = 1e-4

_HASH_PRIMES = (np.uint32(0x9E3779B1), np.uint32(0x85EBCA77), np.uint32(0xC2B2AE3D))  # odd multipliers, one per axis
_MORTAR_RGB = (0.78, 0.76, 0.72)
_MORTAR_WIDTH = 0.03  # training units, of the brick pattern's mortar lines


# ----------------------------------------------------------------------------------------------------------------
# Textures
# ----------------------------------------------------------------------------------------------------------------


def _mix32(h: np.ndarray) -> np.ndarray:
    """An avalanche mix of uint32 values in place (every output bit depends on every input bit), modulo 2^32.

    Multipliers and shifts of C. Wellons' "lowbias32" integer hash (found by his hash-prospector search).
    """
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x7FEB352D)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x846CA68B)
    h ^= h >> np.uint32(16)
    return h


def _cell_hash(cells: list[np.ndarray], salt: int) -> np.ndarray:
    """uint32 hash of integer cell coordinates (one int array per axis) and a salt."""
    h = np.full(cells[0].shape, np.uint32(salt & 0xFFFFFFFF), dtype=np.uint32)
    for axis, cell in enumerate(cells):
        h ^= cell.astype(np.int32).view(np.uint32) * _HASH_PRIMES[axis]
        h = _mix32(h)
    return h


def _unit(h: np.ndarray, byte: int = 0) -> np.ndarray:
    """float32 in [0, 1] from 8 bits of a hash (byte 0..3), so one hash gives up to four independent numbers."""
    return ((h >> np.uint32(8 * byte)) & np.uint32(0xFF)).astype(np.float32) * np.float32(1.0 / 255.0)


def _fade(cell_size: float, footprint: np.ndarray) -> np.ndarray:
    """Level-of-detail weight of a texture layer: 1 when a cell spans >= LOD_FULL_PX pixels, 0 at half that."""
    cell_px = cell_size / footprint
    return np.clip(cell_px * np.float32(2.0 / LOD_FULL_PX) - np.float32(1.0), 0.0, 1.0)


def _speckles(coords: list[np.ndarray], cell: float, density: float, salt: int) -> np.ndarray:
    """(N,) bool: points inside a round spot; a ``density`` fraction of the cells of size ``cell`` hold one, of radius
    SPECKLE_RADIUS cells around a random point of the cell (in 2 or 3 dimensions, like the coordinates)."""
    scaled = [c / np.float32(cell) for c in coords]
    cells = [np.floor(c) for c in scaled]
    h = _cell_hash(cells, salt)
    distance2 = np.zeros_like(scaled[0])
    for axis, (c, cell_index) in enumerate(zip(scaled, cells, strict=True)):
        centre = cell_index + np.float32(0.25) + np.float32(0.5) * _unit(h, axis + 1)
        distance2 += (c - centre) ** 2
    return (_unit(h) < density) & (distance2 < SPECKLE_RADIUS**2)


def texture(material: Material, coords: list[np.ndarray], footprint: np.ndarray, salt: int) -> np.ndarray:
    """Albedo of a textured surface at the given points.

    Args:
        material: cell sizes, brightness range and speckles.
        coords: 2 or 3 float32 arrays (N,): the points in the surface's texture coordinates (training units).
        footprint: (N,) float32 size of a pixel on the surface (training units), for the level of detail.
        salt: picks this surface's pattern.

    Returns:
        (N, 3) float32 sRGB albedo.
    """
    rgb = np.asarray(material.rgb, dtype=np.float32)
    dims = len(coords)
    coarse_size = material.coarse[:dims]
    # 1. Coarse cells (bricks: staggered rows), fine cells offset so their borders never line up with the coarse ones.
    if material.bricks:
        row = np.floor(coords[1] / np.float32(coarse_size[1]))
        along = coords[0] / np.float32(coarse_size[0]) + np.float32(0.5) * (row % 2)
        coarse_cells = [np.floor(along), row]
    else:
        coarse_cells = [np.floor(c / np.float32(size)) for c, size in zip(coords, coarse_size, strict=True)]
    coarse = _unit(_cell_hash(coarse_cells, salt)) - np.float32(0.5)
    fine_cells = [np.floor(c / np.float32(material.fine) + np.float32(0.37 + 0.23 * a)) for a, c in enumerate(coords)]
    fine = _unit(_cell_hash(fine_cells, salt + 1)) - np.float32(0.5)
    value = (
        np.float32(0.5)
        + np.float32(COARSE_WEIGHT) * _fade(min(coarse_size), footprint) * coarse
        + np.float32(1.0 - COARSE_WEIGHT) * _fade(material.fine, footprint) * fine
    )  # (N,) in [0, 1]
    brightness = np.float32(material.low) + np.float32(1.0 - material.low) * value  # (N,)
    albedo = brightness[:, None] * rgb  # (N, 3)

    # 2. Speckles: dark spots, and for surfaces with highlights larger light spots on a coarser grid.
    layers = [(material.speckle_cell, material.speckle_density, salt + 2)]
    if material.highlight_density > 0:
        layers.append((material.speckle_cell * HIGHLIGHT_CELL_SCALE, material.highlight_density, salt + 3))
    for layer, (cell, density, layer_salt) in enumerate(layers):
        spot = _speckles(coords, cell, density, layer_salt)
        if not spot.any():
            continue
        if layer == 1:
            spot_rgb = rgb + np.float32(HIGHLIGHT_MIX) * (np.float32(1.0) - rgb)
        elif material.speckle_rgb is None:
            spot_rgb = np.float32(SPECKLE_SHADE) * rgb
        else:
            spot_rgb = np.float32(material.speckle_rgb)
        weight = _fade(2.0 * SPECKLE_RADIUS * cell, footprint[spot])[:, None]  # (n, 1)
        albedo[spot] += weight * (spot_rgb - albedo[spot])

    # 3. Mortar lines between bricks.
    if material.bricks:
        joint_u = (along - coarse_cells[0]) * np.float32(coarse_size[0])  # distance past the vertical joint
        joint_v = coords[1] - row * np.float32(coarse_size[1])
        mortar = (joint_u < _MORTAR_WIDTH) | (joint_v < _MORTAR_WIDTH)
        if mortar.any():
            weight = _fade(2.0 * _MORTAR_WIDTH, footprint[mortar])[:, None]
            albedo[mortar] += weight * (np.float32(_MORTAR_RGB) - albedo[mortar])
    return albedo


def _object_material(obj: SceneObject) -> Material:
    """The texture of an object: its palette colour, brightness in [OBJECT_LOW, 1], dark (or light) speckles."""
    rgb = PALETTE[obj.colour]
    dark = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] < DARK_OBJECT_LUMA
    return Material(
        obj.colour,
        rgb,
        coarse=(OBJECT_COARSE_CELL,) * 3,
        fine=OBJECT_FINE_CELL,
        low=OBJECT_LOW,
        speckle_cell=OBJECT_SPECKLE_CELL,
        speckle_density=OBJECT_SPECKLE_DENSITY,
        speckle_rgb=DARK_OBJECT_SPECKLE_RGB if dark else None,
    )


# ----------------------------------------------------------------------------------------------------------------
# Intersections (all arrays float32, broadcastable; misses are inf)
# ----------------------------------------------------------------------------------------------------------------


def _to_local(x: np.ndarray, y: np.ndarray, cos_yaw: np.ndarray, sin_yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World XY offsets -> the object's local XY (rotate by -yaw; +yaw turns X toward Y)."""
    return cos_yaw * x + sin_yaw * y, cos_yaw * y - sin_yaw * x


def _to_world(x: np.ndarray, y: np.ndarray, cos_yaw: np.ndarray, sin_yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local XY -> world XY offsets (rotate by +yaw)."""
    return cos_yaw * x - sin_yaw * y, sin_yaw * x + cos_yaw * y


def _intersect(
    obj: SceneObject,
    q: tuple[np.ndarray, np.ndarray, np.ndarray],
    d: tuple[np.ndarray, np.ndarray, np.ndarray],
    cos_yaw: np.ndarray,
    sin_yaw: np.ndarray,
    t_min: float,
) -> np.ndarray:
    """Ray parameter of the first hit with t > t_min of rays q + t d (q = ray origin - object centre), else inf.

    Rays start outside the object (cameras and the surfaces of other objects are outside every object).
    """
    qx, qy, qz = q
    dx, dy, dz = d
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if obj.shape == "sphere":
            a = dx * dx + dy * dy + dz * dz
            b = qx * dx + qy * dy + qz * dz
            c = qx * qx + qy * qy + qz * qz - np.float32(obj.radius**2)
            t = (-b - np.sqrt(b * b - a * c)) / a  # nan where the ray misses
        elif obj.shape == "cube":
            h = np.float32(obj.radius)
            qx, qy = _to_local(qx, qy, cos_yaw, sin_yaw)
            dx, dy = _to_local(dx, dy, cos_yaw, sin_yaw)
            t_near = np.full(np.broadcast_shapes(qx.shape, dx.shape), -np.inf, dtype=np.float32)
            t_far = np.full_like(t_near, np.inf)
            for qa, da in ((qx, dx), (qy, dy), (qz, dz)):  # slabs |local a| <= h
                t0, t1 = (-h - qa) / da, (h - qa) / da
                np.maximum(t_near, np.minimum(t0, t1), out=t_near)
                np.minimum(t_far, np.maximum(t0, t1), out=t_far)
            t = np.where(t_near <= t_far, t_near, np.nan)
        elif obj.shape == "cylinder":
            r, hh = np.float32(obj.radius), np.float32(obj.half_height)
            a = dx * dx + dy * dy
            b = qx * dx + qy * dy
            c = qx * qx + qy * qy - r * r
            t_side = (-b - np.sqrt(b * b - a * c)) / a
            t_side = np.where(np.abs(qz + t_side * dz) <= hh, t_side, np.nan)
            t_cap = (np.where(qz > 0, hh, -hh) - qz) / dz  # the cap on the origin's side
            cap_x, cap_y = qx + t_cap * dx, qy + t_cap * dy
            t_cap = np.where(cap_x * cap_x + cap_y * cap_y <= r * r, t_cap, np.nan)
            t = np.fmin(t_side, t_cap)  # fmin ignores nan
        else:
            raise ValueError(f"unknown shape {obj.shape!r}")
        return np.where(t > t_min, t, np.float32(np.inf)).astype(np.float32, copy=False)


def _bounding_radius(obj: SceneObject) -> float:
    return float(np.hypot(obj.radius * (np.sqrt(2.0) if obj.shape == "cube" else 1.0), obj.half_height))


def _local_normal(obj: SceneObject, px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, ...]:
    """Unit outward normal in object-local axes at local surface points (N,) each."""
    if obj.shape == "sphere":
        inv = np.float32(1.0 / obj.radius)
        return px * inv, py * inv, pz * inv
    zero = np.zeros_like(px)
    if obj.shape == "cube":
        ax, ay, az = np.abs(px), np.abs(py), np.abs(pz)
        on_x = (ax >= ay) & (ax >= az)
        on_y = ~on_x & (ay >= az)
        on_z = ~on_x & ~on_y
        return np.where(on_x, np.sign(px), zero), np.where(on_y, np.sign(py), zero), np.where(on_z, np.sign(pz), zero)
    radial = np.sqrt(px * px + py * py)
    on_cap = np.float32(obj.half_height) - np.abs(pz) < np.float32(obj.radius) - radial
    inv = np.where(on_cap, zero, 1.0 / np.maximum(radial, np.float32(1e-12)))
    return px * inv, py * inv, np.where(on_cap, np.sign(pz), zero)


# ----------------------------------------------------------------------------------------------------------------
# One camera
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class _Frames:
    """Per-frame object poses of a scene, float32."""

    centres: np.ndarray  # (K, T, 3)
    cos_yaw: np.ndarray  # (K, T)
    sin_yaw: np.ndarray  # (K, T)


@dataclass
class _Rays:
    """One camera's rays: a centre and a direction per pixel with camera z = 1 (so t = camera z)."""

    origin: tuple[np.float32, np.float32, np.float32]  # camera centre, world
    d: tuple[np.ndarray, np.ndarray, np.ndarray]  # 3 x (P,) float32 world directions, row-major pixels
    length: np.ndarray  # (P,) float32 world length of each direction


def _pixel_rays(c2w: np.ndarray, intrinsics: Intrinsics, supersample: int = 1) -> _Rays:
    """Rays through the centres of the pixels, or of an s x s grid of sub-pixels in each pixel.

    With ``supersample`` s, the rays form an (s H) x (s W) image whose pixel (I, J) is centred at image point
    ((J + 0.5) / s, (I + 0.5) / s): s x s blocks of it average to the H x W image.
    """
    s = supersample
    cols = ((np.arange(intrinsics.width * s) + 0.5) / s - intrinsics.cx) / intrinsics.fx  # (sW,) camera x
    rows = ((np.arange(intrinsics.height * s) + 0.5) / s - intrinsics.cy) / intrinsics.fy  # (sH,) camera y
    x, y = np.meshgrid(cols, rows)  # (sH, sW) each
    d_cam = np.stack([x.ravel(), y.ravel(), np.ones(x.size)])  # (3, P)
    d_world = (c2w[:3, :3] @ d_cam).astype(np.float32)  # (3, P): columns of R are the camera axes in the world
    dx, dy, dz = d_world
    origin = tuple(np.float32(v) for v in c2w[:3, 3])
    return _Rays(origin, (dx, dy, dz), np.sqrt(dx * dx + dy * dy + dz * dz))


@dataclass
class _Hits:
    """The nearest surface of every ray at every frame."""

    depth: np.ndarray  # (T, P) float32 ray parameter = camera z; inf for the sky
    surface: np.ndarray  # (T, P) int8 surface id (SKY_ID, FLOOR_ID, WALL_ID, OBJECT_ID0 + k)
    static_depth: np.ndarray  # (P,) the same without objects (floor, wall, sky), identical in every frame
    static_surface: np.ndarray  # (P,) int8


def _nearest_hits(spec: SceneSpec, frames: _Frames, rays: _Rays) -> _Hits:
    """Intersect the rays with the floor, the wall and every object at every frame."""
    num_frames = frames.centres.shape[1]
    ox, oy, oz = rays.origin
    dx, dy, dz = rays.d
    num_pixels = dx.size
    background = spec.background

    # 1. Static surfaces (floor, wall, sky): the same in every frame.
    with np.errstate(divide="ignore"):
        t_floor = np.where(dz < 0, -oz / dz, np.float32(np.inf))  # (P,) floor Z = 0, seen from above
    static_t = t_floor
    static_id = np.where(np.isfinite(t_floor), FLOOR_ID, SKY_ID).astype(np.int8)  # (P,)
    if background.wall is not None:
        # Inside a vertical cylinder of radius R around the origin: the far root of |o + t d|_xy = R.
        a = dx * dx + dy * dy
        b = ox * dx + oy * dy
        c = ox * ox + oy * oy - np.float32(background.wall_radius**2)  # < 0: the camera is inside
        t_wall = (-b + np.sqrt(b * b - a * c)) / a
        t_wall = np.where(oz + t_wall * dz <= background.wall_height, t_wall, np.float32(np.inf))
        on_wall = t_wall < static_t
        static_t = np.where(on_wall, t_wall, static_t)
        static_id[on_wall] = WALL_ID

    # 2. Objects: nearest hit per frame and pixel, culled with each object's bounding sphere.
    depth = np.broadcast_to(static_t, (num_frames, num_pixels)).copy()  # (T, P)
    surface = np.broadcast_to(static_id, (num_frames, num_pixels)).copy()  # (T, P)
    a = rays.length * rays.length  # (P,)
    for k, obj in enumerate(spec.objects):
        q = [(o - frames.centres[k, :, axis])[:, None] for axis, o in enumerate((ox, oy, oz))]  # 3 x (T, 1)
        b = q[0] * dx + q[1] * dy + q[2] * dz  # (T, P)
        c = q[0] * q[0] + q[1] * q[1] + q[2] * q[2] - np.float32(_bounding_radius(obj) ** 2)  # (T, 1)
        ti, pi = np.nonzero(b * b > a * c)  # candidate (frame, pixel) pairs
        t = _intersect(
            obj,
            tuple(qa[ti, 0] for qa in q),
            (dx[pi], dy[pi], dz[pi]),
            frames.cos_yaw[k, ti],
            frames.sin_yaw[k, ti],
            0.0,
        )
        nearer = t < depth[ti, pi]
        ti, pi = ti[nearer], pi[nearer]
        depth[ti, pi] = t[nearer]
        surface[ti, pi] = OBJECT_ID0 + k
    return _Hits(depth, surface, static_t, static_id)


def _shadowed(
    spec: SceneSpec,
    frames: _Frames,
    points: tuple[np.ndarray, np.ndarray, np.ndarray],
    frame_index: np.ndarray,
    skip_object: int | None,
) -> np.ndarray:
    """(N,) bool: whether the ray from each point toward the light hits an object at that point's frame.

    Args:
        points: world points, 3 arrays (N,) (or broadcastable to the shape of ``frame_index``).
        frame_index: (N,) int frame of each point.
        skip_object: an object that cannot shadow these points (their own convex object, lit side), or None.
    """
    light = tuple(np.float32(c) for c in spec.light.direction)
    shadow = np.zeros(frame_index.shape, dtype=bool)
    for k, obj in enumerate(spec.objects):
        if k == skip_object:
            continue
        centre = frames.centres[k][frame_index]  # (N, 3)
        q = tuple(points[a] - centre[..., a] for a in range(3))
        # Cheap cull with the bounding sphere: a hit needs b^2 - c > 0 and the sphere ahead of the point.
        b = q[0] * light[0] + q[1] * light[1] + q[2] * light[2]
        c = q[0] * q[0] + q[1] * q[1] + q[2] * q[2] - np.float32(_bounding_radius(obj) ** 2)
        candidates = np.nonzero(((b * b - c) > 0) & ((b < 0) | (c < 0)) & ~shadow)
        if candidates[0].size == 0:
            continue
        fi = frame_index[candidates]
        t = _intersect(
            obj,
            tuple(qa[candidates] for qa in q),
            light,
            frames.cos_yaw[k][fi],
            frames.sin_yaw[k][fi],
            SHADOW_EPSILON,
        )
        shadow[candidates] |= np.isfinite(t)
    return shadow


def _light_frame(direction: tuple[float, float, float]) -> np.ndarray:
    """(3, 3) float32 orthonormal rows e1, e2, L: coordinates across (e1, e2) and along (L) the light."""
    light = np.asarray(direction, dtype=np.float64)
    helper = np.array([1.0, 0.0, 0.0]) if abs(light[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(light, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(light, e1)  # unit: light and e1 are orthonormal
    return np.stack([e1, e2, light]).astype(np.float32)


def _static_shadows(
    spec: SceneSpec, frames: _Frames, points: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> list[tuple[int, np.ndarray]]:
    """Which of the static points (floor, wall) each object shadows at each frame.

    The points do not move, so they are sorted once by a coordinate across the light; at each frame, only the strip
    of points whose shadow ray can pass an object's bounding sphere is tested exactly.

    Args:
        points: 3 arrays (M,), world points facing the light.

    Returns:
        (frame, indices into the M points) for every object and frame that shadows something.
    """
    frame_axes = _light_frame(spec.light.direction)  # (3, 3)
    light = tuple(np.float32(c) for c in spec.light.direction)
    u, v, w = (axis[0] * points[0] + axis[1] * points[1] + axis[2] * points[2] for axis in frame_axes)  # 3 x (M,)
    order = np.argsort(u, kind="stable")
    u_sorted = u[order]
    shadows = []
    for k, obj in enumerate(spec.objects):
        radius = np.float32(_bounding_radius(obj))
        centres_light = frames.centres[k] @ frame_axes.T  # (T, 3) centres in (e1, e2, L) coordinates
        for ti, (cu, cv, cw) in enumerate(centres_light):
            lo, hi = np.searchsorted(u_sorted, [cu - radius, cu + radius])
            index = order[lo:hi]
            du, dv = u[index] - cu, v[index] - cv
            # Inside the bounding sphere's shadow cylinder, and not beyond the sphere along the light.
            index = index[(du * du + dv * dv < radius * radius) & (w[index] - cw < radius)]
            if index.size == 0:
                continue
            centre = frames.centres[k, ti]
            t = _intersect(
                obj,
                tuple(points[a][index] - centre[a] for a in range(3)),
                light,
                frames.cos_yaw[k, ti],
                frames.sin_yaw[k, ti],
                SHADOW_EPSILON,
            )
            index = index[np.isfinite(t)]
            if index.size:
                shadows.append((ti, index))
    return shadows


def _shade(spec: SceneSpec, frames: _Frames, rays: _Rays, hits: _Hits, focal: float) -> np.ndarray:
    """(T, P, 3) float32 colour in [0, 1] (before clipping) of every ray at every frame.

    Args:
        focal: the camera's focal length in output pixels, for the texture's level of detail.
    """
    num_frames, num_pixels = hits.depth.shape
    ox, oy, oz = rays.origin
    dx, dy, dz = rays.d
    focal = np.float32(focal)
    light = np.asarray(spec.light.direction, dtype=np.float32)
    ambient, diffuse = np.float32(spec.light.ambient), np.float32(spec.light.diffuse)
    background = spec.background

    # 1. Static shading: albedo, cosine to the light and fog per pixel, lit and in shadow.
    colour_lit = np.empty((num_pixels, 3), dtype=np.float32)  # (P, 3) colour if lit
    colour_shadowed = np.empty((num_pixels, 3), dtype=np.float32)  # (P, 3) colour in shadow
    static_lambert = np.zeros(num_pixels, dtype=np.float32)  # (P,) cosine to the light, 0 for the sky
    sky = hits.static_surface == SKY_ID
    height = np.clip(dz[sky] / rays.length[sky], 0.0, 1.0)[:, None]  # (n, 1) sine of the ray's elevation
    horizon, zenith = np.float32(background.horizon_rgb), np.float32(background.zenith_rgb)
    colour_lit[sky] = colour_shadowed[sky] = horizon + np.sqrt(height) * (zenith - horizon)
    for surface_id in (FLOOR_ID, WALL_ID):
        (pix,) = np.nonzero(hits.static_surface == surface_id)
        if pix.size == 0:
            continue
        t = hits.static_depth[pix]
        px, py, pz = ox + t * dx[pix], oy + t * dy[pix], oz + t * dz[pix]
        if surface_id == FLOOR_ID:
            cosine = np.abs(dz[pix]) / rays.length[pix]  # |normal . ray direction|, normal = +Z
            footprint = t / focal / np.maximum(cosine, np.float32(0.05))  # pixel size on the floor
            albedo = texture(spec.floor, [px, py], footprint, salt=0x5EED)
            lambert = np.full(pix.size, max(float(light[2]), 0.0), dtype=np.float32)
            if background.wall is None:
                distance = t * rays.length[pix]
                fog = 1.0 - np.exp(-np.maximum(distance - np.float32(FOG_START), 0.0) / np.float32(FOG_SCALE))
            else:
                fog = np.zeros(pix.size, dtype=np.float32)
        else:
            radius = np.float32(background.wall_radius)
            nx, ny = -px / radius, -py / radius  # inward normal
            cosine = np.abs(nx * dx[pix] + ny * dy[pix]) / rays.length[pix]
            footprint = t / focal / np.maximum(cosine, np.float32(0.05))
            arc = np.arctan2(py, px) * radius  # texture axes: along the wall, up
            albedo = texture(background.wall, [arc, pz], footprint, salt=0xB0A4D)
            lambert = np.maximum(nx * light[0] + ny * light[1], 0.0)
            fog = np.zeros(pix.size, dtype=np.float32)
        static_lambert[pix] = lambert
        lit = albedo * (ambient + diffuse * lambert)[:, None]
        dark = albedo * ambient
        colour_lit[pix] = lit + fog[:, None] * (horizon - lit)
        colour_shadowed[pix] = dark + fog[:, None] * (horizon - dark)
    colour = np.broadcast_to(colour_lit, (num_frames, num_pixels, 3)).copy()  # (T, P, 3)

    # 2. Shadows on the static surfaces, per frame (objects move).
    (lit_pixels,) = np.nonzero(static_lambert > 0)  # only surfaces facing the light can be shadowed (not the sky)
    t = hits.static_depth[lit_pixels]
    points = (ox + t * dx[lit_pixels], oy + t * dy[lit_pixels], oz + t * dz[lit_pixels])
    for ti, index in _static_shadows(spec, frames, points):
        pix = lit_pixels[index]
        colour[ti, pix] = colour_shadowed[pix]

    # 3. Objects: local coordinates, normals, texture, Lambert and shadows from the other objects.
    for k, obj in enumerate(spec.objects):
        ti, pi = np.nonzero(hits.surface == OBJECT_ID0 + k)
        if ti.size == 0:
            continue
        t = hits.depth[ti, pi]
        points = (ox + t * dx[pi], oy + t * dy[pi], oz + t * dz[pi])
        cos_yaw, sin_yaw = frames.cos_yaw[k, ti], frames.sin_yaw[k, ti]
        centre = frames.centres[k][ti]  # (N, 3)
        lx, ly = _to_local(points[0] - centre[:, 0], points[1] - centre[:, 1], cos_yaw, sin_yaw)
        lz = points[2] - centre[:, 2]
        nlx, nly, nz = _local_normal(obj, lx, ly, lz)
        nx, ny = _to_world(nlx, nly, cos_yaw, sin_yaw)
        cosine = np.abs(nx * dx[pi] + ny * dy[pi] + nz * dz[pi]) / rays.length[pi]
        footprint = t / focal / np.maximum(cosine, np.float32(0.05))
        albedo = texture(_object_material(obj), [lx, ly, lz], footprint, salt=obj.texture_seed)
        lambert = np.maximum(nx * light[0] + ny * light[1] + nz * light[2], 0.0)
        facing = np.nonzero(lambert > 0)[0]
        shadow = _shadowed(spec, frames, tuple(p[facing] for p in points), ti[facing], skip_object=k)
        lambert[facing[shadow]] = 0.0
        colour[ti, pi] = albedo * (ambient + diffuse * lambert)[:, None]
    return colour


# ----------------------------------------------------------------------------------------------------------------
# All cameras
# ----------------------------------------------------------------------------------------------------------------


def render_views(
    spec: SceneSpec,
    rig: CameraRig,
    num_frames: int,
    size: int,
    intrinsics: Intrinsics | None = None,
    supersample: int = DEFAULT_SUPERSAMPLE,
) -> tuple[np.ndarray, np.ndarray]:
    """Render every camera of a static rig over the clip.

    Args:
        spec: the scene.
        rig: V static cameras (OpenCV camera axes, UE world, training units).
        num_frames: T >= 1 video frames (motions span the clip, see render.world).
        size: S, the side of the square images in pixels.
        intrinsics: pixel intrinsics of S x S images; default ``rig.intrinsics`` or, if the rig has none, the
            SynCamVideo camera ``Intrinsics.training(S, S)``.
        supersample: antialiasing, s x s rays per pixel averaged (1: one ray through the pixel centre).

    Returns:
        videos (V, T, S, S, 3) uint8 RGB and depth (V, T, S, S) float32: the camera z (distance along the optical
        axis) of the surface seen through each pixel centre, in training units; inf where that ray hits nothing.
    """
    # 1. Check inputs.
    if not isinstance(rig, CameraRig) or not rig.is_static:
        raise ValueError("render_views needs a static CameraRig (one pose per camera)")
    for name, value in (("number of frames", num_frames), ("image size", size), ("supersampling", supersample)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"the {name} must be a positive integer, got {value!r}")
    if intrinsics is None:
        intrinsics = rig.intrinsics if rig.intrinsics is not None else Intrinsics.training(size, size)
    if (intrinsics.width, intrinsics.height) != (size, size):
        raise ValueError(
            f"the intrinsics are for {intrinsics.width}x{intrinsics.height} images but size is {size}; "
            "give intrinsics of square size x size images"
        )

    # 2. Object poses at every frame.
    centres, yaws = object_poses(spec, num_frames)  # (K, T, 3), (K, T)
    frames = _Frames(centres.astype(np.float32), np.cos(yaws).astype(np.float32), np.sin(yaws).astype(np.float32))

    # 3. Each camera: colour from s x s rays per pixel, depth from the ray through the pixel centre.
    videos = np.empty((rig.num_views, num_frames, size, size, 3), dtype=np.uint8)
    depth = np.empty((rig.num_views, num_frames, size, size), dtype=np.float32)
    s = int(supersample)
    for v, c2w in enumerate(rig.c2w):
        rays = _pixel_rays(c2w, intrinsics, s)
        hits = _nearest_hits(spec, frames, rays)
        colour = _shade(spec, frames, rays, hits, intrinsics.fx)  # (T, s*S * s*S, 3)
        if s > 1:
            blocks = colour.reshape(num_frames, size, s, size, s, 3)  # (T, S, s, S, s, 3)
            colour = sum(blocks[:, :, i, :, j] for i in range(s) for j in range(s)) * np.float32(1.0 / (s * s))
            hits = _nearest_hits(spec, frames, _pixel_rays(c2w, intrinsics))
        np.clip(colour * np.float32(255.0) + np.float32(0.5), 0.0, 255.0, out=colour)
        videos[v] = colour.astype(np.uint8).reshape(num_frames, size, size, 3)
        depth[v] = hits.depth.reshape(num_frames, size, size)
    return videos, depth
