"""What a procedural scene holds and how it moves: objects, motions, floor, background, light and caption.

Nothing here draws pixels (that is :mod:`syncammaster.render.raycast`); a :class:`SceneSpec` is a small, picklable
description sampled deterministically from a seed.

World frame (the one of :mod:`syncammaster.cameras` for SynCamVideo data): Unreal Engine axes, X forward, Y right,
Z up (left-handed), lengths in training units (UE cm / 200, so 1 unit = 2 m). The ground is the plane Z = 0 and the
scene centre is the origin. A scene has a *front*: the view of a camera looking along +X, for which "left" is -Y,
"right" +Y, "away" +X and "closer" -X. Captions use those words; :func:`syncammaster.render.rig.sample_cameras` keeps
the cameras around that front. A yaw rotation by +angle turns +X toward +Y, which is clockwise seen from above.

Motions are laid out over the whole clip whatever its length: frame t of T is at clip time s = t / (T - 1) in [0, 1].

One file: objects, motions, floor, background and caption are sampled together from one seed, so that a caption
always names what the scene holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BACKGROUNDS",
    "FLOORS",
    "PALETTE",
    "Background",
    "Light",
    "Material",
    "Motion",
    "SceneObject",
    "SceneSpec",
    "clip_times",
    "object_poses",
    "sample_scene",
]

# Object colours, by the word the captions use. sRGB values in [0, 1] chosen so that each colour keeps its name under
# Lambert shading (down to ~40 % brightness in shadow) and the texture's brightness modulation.
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.12, 0.10),
    "green": (0.16, 0.66, 0.22),
    "blue": (0.13, 0.32, 0.90),
    "yellow": (0.97, 0.85, 0.14),
    "orange": (0.98, 0.52, 0.08),
    "purple": (0.56, 0.22, 0.76),
    "pink": (0.98, 0.50, 0.72),
    "cyan": (0.12, 0.80, 0.86),
    "white": (0.93, 0.93, 0.93),
    "black": (0.13, 0.13, 0.14),
}

SHAPES = ("sphere", "cube", "cylinder")
SIZES = ("small", "large")
MOTIONS = ("still", "bounce", "slide", "circle", "spin")
MOTION_WEIGHTS = (0.18, 0.26, 0.22, 0.14, 0.20)
OBJECT_COUNT_WEIGHTS = {1: 0.3, 2: 0.4, 3: 0.3}

# Object dimensions in training units (1 unit = 2 m): (low, high) of a uniform draw.
SPHERE_RADIUS = {"small": (0.11, 0.15), "large": (0.21, 0.27)}
CUBE_HALF_SIDE = {"small": (0.09, 0.12), "large": (0.17, 0.22)}
CYLINDER_RADIUS = {"small": (0.08, 0.10), "large": (0.14, 0.18)}
CYLINDER_HALF_HEIGHT = {"small": (0.12, 0.16), "large": (0.22, 0.29)}

# Layout: objects stay within this radius of the centre (so the cameras, which look at the centre, see them) and
# keep this gap between their footprints at every moment of the clip.
LAYOUT_RADIUS = 0.6
OBJECT_GAP = 0.04
LAYOUT_TRIES = 200
COLLISION_CHECK_TIMES = 41

# Motion amplitudes, training units or degrees.
BOUNCE_HEIGHT = (0.12, 0.30)
SLIDE_LENGTH = (0.30, 0.50)
CIRCLE_RADIUS = (0.25, 0.42)
CIRCLE_ARC_DEG = (90.0, 180.0)
SPIN_ANGLE_DEG = (120.0, 300.0)

# Unit XY directions of the slide words, in the scene's front frame (module docstring).
SLIDE_DIRECTIONS: dict[str, tuple[float, float]] = {
    "left": (0.0, -1.0),
    "right": (0.0, 1.0),
    "away": (1.0, 0.0),
    "closer": (-1.0, 0.0),
}

# Sun: elevation above the horizon, degrees; light intensities (colour = albedo * (ambient + diffuse * cos)).
SUN_ELEVATION_DEG = (35.0, 65.0)
AMBIENT = (0.45, 0.55)
DIFFUSE = 0.6

# Independent random streams of one scene seed: changing how captions are worded never moves an object.
_LAYOUT_STREAM = 1
_CAPTION_STREAM = 2


# ----------------------------------------------------------------------------------------------------------------
# Specs
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Material:
    """A textured surface: a base colour modulated by a sharp, non-repeating mosaic (see ``raycast.texture``).

    Cell sizes are in training units along the surface's own texture axes (object-local for objects, world X / Y for
    the floor, arc length / height for the backdrop wall).
    """

    name: str  # the words the captions use, e.g. "grey stone"
    rgb: tuple[float, float, float]
    coarse: tuple[float, float, float]  # coarse cell size along each texture axis; unequal sizes give planks
    fine: float  # fine cell size (cubic), mixed with the coarse cells
    low: float  # the texture modulates brightness in [low, 1]
    speckle_cell: float  # one possible speckle per cell of this size
    speckle_density: float  # fraction of speckle cells that hold a speckle
    speckle_rgb: tuple[float, float, float] | None = None  # None: a darker shade of ``rgb``
    highlight_density: float = 0.0  # fraction of (coarser) cells holding a light spot
    bricks: bool = False  # staggered brick rows with mortar lines (texture axes 0 = along, 1 = up)
    avoid: tuple[str, ...] = ()  # palette colours that would not stand out against this surface


@dataclass(frozen=True)
class Background:
    """A sky gradient, optionally behind a cylindrical wall around the scene (a textured backdrop)."""

    name: str
    horizon_rgb: tuple[float, float, float]
    zenith_rgb: tuple[float, float, float]
    phrases: tuple[str, ...]  # caption endings, e.g. "under a clear sky"
    wall: Material | None = None
    wall_radius: float = 4.0  # training units, around the scene centre
    wall_height: float = 1.4


@dataclass(frozen=True)
class Light:
    """A directional light (the sun)."""

    direction: tuple[float, float, float]  # unit vector from the scene toward the light
    ambient: float
    diffuse: float


@dataclass(frozen=True)
class SceneObject:
    """One primitive resting on the floor. Dimensions in training units."""

    shape: str  # "sphere", "cube" or "cylinder"
    colour: str  # a PALETTE name
    size: str  # "small" or "large"
    radius: float  # sphere / cylinder radius, cube half side
    half_height: float  # half the vertical extent (sphere: radius; cube: half side)
    texture_seed: int  # picks this object's texture

    @property
    def footprint_radius(self) -> float:
        """Radius of a vertical cylinder around the object's axis that contains it at any yaw."""
        return self.radius * math.sqrt(2.0) if self.shape == "cube" else self.radius


@dataclass(frozen=True)
class Motion:
    """How one object moves over the clip (clip time s in [0, 1]).

    - still:  stays at ``position``.
    - bounce: lifted by ``amount * |sin(pi * count * s)|`` (``count`` hops, floor contact at both ends).
    - slide:  moves ``amount`` units along ``direction`` (a SLIDE_DIRECTIONS word); ``position`` is the midpoint.
    - circle: moves along a circle of radius |position| around the centre by ``amount`` degrees, turning with it;
              ``position`` is the midpoint; ``direction`` is "clockwise" or "counterclockwise" (seen from above).
    - spin:   turns in place by ``amount`` degrees, ``direction`` "clockwise" or "counterclockwise".
    """

    kind: str
    position: tuple[float, float]  # XY, training units
    yaw_deg: float  # initial heading (texture and cube orientation)
    direction: str = ""
    amount: float = 0.0
    count: int = 1


@dataclass(frozen=True)
class SceneSpec:
    """Everything a procedural scene holds; render it with :func:`syncammaster.render.render_views`."""

    objects: tuple[SceneObject, ...]
    motions: tuple[Motion, ...]  # one per object
    floor: Material
    background: Background
    light: Light
    caption: str


# ----------------------------------------------------------------------------------------------------------------
# Floors and backgrounds
# ----------------------------------------------------------------------------------------------------------------

FLOORS: dict[str, tuple[Material, tuple[str, ...]]] = {
    "grey stone": (
        Material(
            "grey stone",
            (0.60, 0.59, 0.57),
            coarse=(0.16, 0.16, 0.16),
            fine=0.055,
            low=0.35,
            speckle_cell=0.07,
            speckle_density=0.5,
            highlight_density=0.35,
        ),
        ("on a grey stone floor", "on grey stone paving", "on a floor of grey stone"),
    ),
    "sandy": (
        Material(
            "sandy",
            (0.84, 0.72, 0.50),
            coarse=(0.20, 0.20, 0.20),
            fine=0.05,
            low=0.45,
            speckle_cell=0.06,
            speckle_density=0.55,
            highlight_density=0.3,
            avoid=("yellow",),
        ),
        ("on sandy ground", "on a sandy floor", "on sand"),
    ),
    "grassy": (
        Material(
            "grassy",
            (0.36, 0.54, 0.22),
            coarse=(0.13, 0.13, 0.13),
            fine=0.045,
            low=0.38,
            speckle_cell=0.06,
            speckle_density=0.5,
            highlight_density=0.35,
            avoid=("green",),
        ),
        ("on a grassy lawn", "on green grass", "on a lawn"),
    ),
    "wooden": (
        Material(
            "wooden",
            (0.62, 0.41, 0.23),
            coarse=(0.60, 0.11, 0.11),
            fine=0.045,
            low=0.4,
            speckle_cell=0.07,
            speckle_density=0.45,
            highlight_density=0.3,
            avoid=("orange",),
        ),
        ("on a wooden floor", "on wooden planks", "on a plank floor"),
    ),
    "dark asphalt": (
        Material(
            "dark asphalt",
            (0.30, 0.30, 0.32),
            coarse=(0.15, 0.15, 0.15),
            fine=0.05,
            low=0.45,
            speckle_cell=0.05,
            speckle_density=0.3,
            speckle_rgb=(0.08, 0.08, 0.09),
            highlight_density=0.5,
            avoid=("black",),
        ),
        ("on dark asphalt", "on a dark asphalt surface", "on an asphalt road"),
    ),
    "terracotta tiled": (
        Material(
            "terracotta tiled",
            (0.74, 0.43, 0.30),
            coarse=(0.22, 0.22, 0.22),
            fine=0.07,
            low=0.42,
            speckle_cell=0.07,
            speckle_density=0.5,
            highlight_density=0.35,
            avoid=("orange",),
        ),
        ("on a terracotta tiled floor", "on terracotta tiles", "on a tiled terracotta floor"),
    ),
}

_CLEAR_SKY = ((0.78, 0.87, 0.97), (0.26, 0.50, 0.90))
BACKGROUNDS: dict[str, Background] = {
    "clear sky": Background(
        "clear sky", *_CLEAR_SKY, ("under a clear sky", "under a clear blue sky", "beneath a blue sky")
    ),
    "sunset sky": Background(
        "sunset sky",
        (0.99, 0.66, 0.36),
        (0.36, 0.26, 0.56),
        ("under a sunset sky", "at sunset", "under an orange and purple evening sky"),
    ),
    "overcast sky": Background(
        "overcast sky",
        (0.84, 0.85, 0.87),
        (0.58, 0.60, 0.65),
        ("under an overcast sky", "on a cloudy day", "under a grey cloudy sky"),
    ),
    "brick wall": Background(
        "brick wall",
        *_CLEAR_SKY,
        ("in front of a brick wall", "surrounded by a brick wall", "in a courtyard with brick walls"),
        wall=Material(
            "brick",
            (0.64, 0.30, 0.22),
            coarse=(0.42, 0.17, 1.0),
            fine=0.12,
            low=0.45,
            speckle_cell=0.15,
            speckle_density=0.4,
            highlight_density=0.3,
            bricks=True,
            avoid=("red",),
        ),
    ),
    "concrete wall": Background(
        "concrete wall",
        *_CLEAR_SKY,
        ("in front of a concrete wall", "surrounded by a concrete wall", "in a yard with concrete walls"),
        wall=Material(
            "concrete",
            (0.64, 0.64, 0.62),
            coarse=(0.40, 0.30, 1.0),
            fine=0.12,
            low=0.4,
            speckle_cell=0.16,
            speckle_density=0.5,
            highlight_density=0.35,
        ),
    ),
    "hedge": Background(
        "hedge",
        *_CLEAR_SKY,
        ("in front of a green hedge", "surrounded by a hedge", "in a garden enclosed by a green hedge"),
        wall=Material(
            "hedge",
            (0.22, 0.44, 0.17),
            coarse=(0.20, 0.20, 1.0),
            fine=0.08,
            low=0.35,
            speckle_cell=0.10,
            speckle_density=0.5,
            highlight_density=0.35,
            avoid=("green",),
        ),
    ),
}


# ----------------------------------------------------------------------------------------------------------------
# Motion over time
# ----------------------------------------------------------------------------------------------------------------


def clip_times(num_frames: int) -> np.ndarray:
    """(T,) clip time s in [0, 1] of each frame (a single frame sits at s = 0)."""
    return np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)


def _pose(obj: SceneObject, motion: Motion, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(len(s), 3) centres and (len(s),) yaws in radians of one object at clip times ``s``."""
    centre = np.zeros((len(s), 3))
    centre[:, :2] = motion.position
    centre[:, 2] = obj.half_height  # resting on the floor Z = 0
    yaw = np.full(len(s), math.radians(motion.yaw_deg))
    turn = 1.0 if motion.direction == "clockwise" else -1.0  # +yaw turns X toward Y: clockwise from above
    if motion.kind == "bounce":
        centre[:, 2] += motion.amount * np.abs(np.sin(math.pi * motion.count * s))
    elif motion.kind == "slide":
        centre[:, :2] += np.outer(s - 0.5, SLIDE_DIRECTIONS[motion.direction]) * motion.amount
    elif motion.kind == "circle":
        swept = turn * np.radians(motion.amount) * (s - 0.5)  # angle travelled from the midpoint
        start_angle = math.atan2(motion.position[1], motion.position[0])
        circle_radius = math.hypot(*motion.position)
        centre[:, 0] = circle_radius * np.cos(start_angle + swept)
        centre[:, 1] = circle_radius * np.sin(start_angle + swept)
        yaw += swept  # the object turns as it goes round, like a carousel horse
    elif motion.kind == "spin":
        yaw += turn * np.radians(motion.amount) * s
    elif motion.kind != "still":
        raise ValueError(f"unknown motion {motion.kind!r}; expected one of {', '.join(MOTIONS)}")
    return centre, yaw


def object_poses(spec: SceneSpec, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Where every object is at every frame.

    Returns:
        centres (K, T, 3) float64 world points (the object's centre), yaws (K, T) float64 radians.
    """
    s = clip_times(num_frames)
    poses = [_pose(obj, motion, s) for obj, motion in zip(spec.objects, spec.motions, strict=True)]
    if not poses:
        return np.zeros((0, num_frames, 3)), np.zeros((0, num_frames))
    return np.stack([c for c, _ in poses]), np.stack([y for _, y in poses])


# ----------------------------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------------------------


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _sample_object(rng: np.random.Generator, colour: str) -> SceneObject:
    shape = str(rng.choice(SHAPES))
    size = str(rng.choice(SIZES))
    if shape == "sphere":
        radius = half_height = _uniform(rng, SPHERE_RADIUS[size])
    elif shape == "cube":
        radius = half_height = _uniform(rng, CUBE_HALF_SIDE[size])
    else:
        radius, half_height = _uniform(rng, CYLINDER_RADIUS[size]), _uniform(rng, CYLINDER_HALF_HEIGHT[size])
    return SceneObject(shape, colour, size, radius, half_height, int(rng.integers(2**31)))


def _point_in_disc(rng: np.random.Generator, radius: float) -> tuple[float, float]:
    r, angle = radius * math.sqrt(rng.uniform()), rng.uniform(0.0, 2.0 * math.pi)
    return (r * math.cos(angle), r * math.sin(angle))


def _sample_motion(rng: np.random.Generator, kind: str, obj: SceneObject) -> Motion:
    yaw = _uniform(rng, (0.0, 360.0))
    turn = str(rng.choice(["clockwise", "counterclockwise"]))
    room = LAYOUT_RADIUS - obj.footprint_radius  # the centre stays this close to the scene centre
    if kind == "bounce":
        return Motion(
            kind, _point_in_disc(rng, room), yaw, amount=_uniform(rng, BOUNCE_HEIGHT), count=int(rng.integers(1, 3))
        )
    if kind == "slide":
        length = _uniform(rng, SLIDE_LENGTH)
        midpoint = _point_in_disc(rng, max(room - length / 2, 0.0))
        return Motion(kind, midpoint, yaw, str(rng.choice(list(SLIDE_DIRECTIONS))), length)
    if kind == "circle":
        radius = min(_uniform(rng, CIRCLE_RADIUS), room)
        angle = rng.uniform(0.0, 2.0 * math.pi)
        return Motion(
            kind, (radius * math.cos(angle), radius * math.sin(angle)), yaw, turn, _uniform(rng, CIRCLE_ARC_DEG)
        )
    if kind == "spin":
        return Motion(kind, _point_in_disc(rng, room), yaw, turn, _uniform(rng, SPIN_ANGLE_DEG))
    return Motion("still", _point_in_disc(rng, room), yaw)


def _layout_is_free(objects: list[SceneObject], motions: list[Motion]) -> bool:
    """True if no two objects' footprints come closer than OBJECT_GAP at any sampled moment of the clip."""
    s = np.linspace(0.0, 1.0, COLLISION_CHECK_TIMES)
    paths = [_pose(obj, motion, s)[0][:, :2] for obj, motion in zip(objects, motions, strict=True)]  # K x (n, 2)
    for i in range(len(objects)):
        for j in range(i):
            clearance = objects[i].footprint_radius + objects[j].footprint_radius + OBJECT_GAP
            if np.linalg.norm(paths[i] - paths[j], axis=-1).min() < clearance:
                return False
    return True


def sample_scene(seed: int, num_objects: int | None = None) -> SceneSpec:
    """A random scene, the same for the same ``seed``.

    Args:
        seed: a non-negative integer.
        num_objects: 1 to 3 objects, or None to draw the count (1: 30 %, 2: 40 %, 3: 30 %).
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"the scene seed must be a non-negative integer, got {seed!r}")
    if num_objects is not None and num_objects not in OBJECT_COUNT_WEIGHTS:
        raise ValueError(f"a scene holds 1 to 3 objects, got num_objects={num_objects!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _LAYOUT_STREAM]))

    # 1. Surroundings and light.
    floor, floor_phrases = FLOORS[str(rng.choice(list(FLOORS)))]
    background = BACKGROUNDS[str(rng.choice(list(BACKGROUNDS)))]
    sun_azimuth = rng.uniform(0.0, 2.0 * math.pi)
    sun_elevation = math.radians(_uniform(rng, SUN_ELEVATION_DEG))
    light = Light(
        (
            math.cos(sun_elevation) * math.cos(sun_azimuth),
            math.cos(sun_elevation) * math.sin(sun_azimuth),
            math.sin(sun_elevation),
        ),
        _uniform(rng, AMBIENT),
        DIFFUSE,
    )

    # 2. Objects: distinct colours that stand out against the floor and the wall.
    if num_objects is None:
        counts = list(OBJECT_COUNT_WEIGHTS)
        num_objects = int(rng.choice(counts, p=[OBJECT_COUNT_WEIGHTS[c] for c in counts]))
    avoid = set(floor.avoid) | set(background.wall.avoid if background.wall else ())
    colours = [c for c in PALETTE if c not in avoid]
    chosen = [str(c) for c in rng.choice(colours, size=num_objects, replace=False)]
    objects = [_sample_object(rng, colour) for colour in chosen]

    # 3. Motions, re-drawn until the objects never touch; at least one object moves. Crowded draws are rare; if all
    # tries fail, the last object is dropped and the layout drawn again.
    while True:
        for _ in range(LAYOUT_TRIES):
            kinds = [str(k) for k in rng.choice(MOTIONS, size=len(objects), p=MOTION_WEIGHTS)]
            if all(k == "still" for k in kinds):
                continue
            motions = [_sample_motion(rng, kind, obj) for kind, obj in zip(kinds, objects, strict=True)]
            if _layout_is_free(objects, motions):
                break
        else:
            objects = objects[:-1]
            continue
        break

    caption_rng = np.random.default_rng(np.random.SeedSequence([int(seed), _CAPTION_STREAM]))
    caption = compose_caption(objects, motions, floor_phrases, background, caption_rng)
    return SceneSpec(tuple(objects), tuple(motions), floor, background, light, caption)


# ----------------------------------------------------------------------------------------------------------------
# Captions
# ----------------------------------------------------------------------------------------------------------------

SHAPE_WORDS = {"sphere": ("sphere", "ball"), "cube": ("cube", "box", "block"), "cylinder": ("cylinder",)}
SIZE_WORDS = {"small": ("small", "little"), "large": ("large", "big")}

# Finite verb phrases ("... bounces") and participle phrases ("... bouncing") for each motion; {direction} is filled
# in with the motion's direction word.
_VERBS = {
    "still": (("rests on the ground", "sits still", "stands still"), ("resting on the ground", "sitting still")),
    "bounce": (("bounces", "bounces up and down", "hops up and down"), ("bouncing", "bouncing up and down")),
    "spin": (("spins {direction}", "spins in place", "rotates {direction}"), ("spinning {direction}", "spinning")),
    "circle": (
        ("circles {direction} around the centre", "moves {direction} in a circle", "travels around in a circle"),
        ("circling {direction} around the centre", "moving in a circle"),
    ),
}
_SLIDE_VERBS = {
    "left": (("slides to the left", "glides to the left", "moves to the left"), ("sliding to the left",)),
    "right": (("slides to the right", "glides to the right", "moves to the right"), ("sliding to the right",)),
    "away": (("slides away", "glides away from the viewer", "moves away"), ("sliding away",)),
    "closer": (("slides closer", "glides toward the viewer", "moves closer"), ("sliding closer",)),
}
_RELATIONS = ("next to", "beside", "near", "and")


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _noun_phrase(rng: np.random.Generator, obj: SceneObject) -> str:
    """'a large red sphere', 'a red ball', 'an orange box' ..."""
    words = [obj.colour, _pick(rng, SHAPE_WORDS[obj.shape])]
    if rng.uniform() < 0.85:  # the size is usually said
        words.insert(0, _pick(rng, SIZE_WORDS[obj.size]))
    return _with_article(" ".join(words))


def _motion_phrases(motion: Motion) -> tuple[tuple[str, ...], tuple[str, ...]]:
    finite, participle = _SLIDE_VERBS[motion.direction] if motion.kind == "slide" else _VERBS[motion.kind]
    return (
        tuple(p.format(direction=motion.direction) for p in finite),
        tuple(p.format(direction=motion.direction) for p in participle),
    )


def compose_caption(
    objects: list[SceneObject],
    motions: list[Motion],
    floor_phrases: tuple[str, ...],
    background: Background,
    rng: np.random.Generator,
) -> str:
    """One sentence naming every object (size, palette colour, shape), its motion, the floor and the background,
    in one of several sentence patterns with synonyms."""
    order = rng.permutation(len(objects))  # mention the objects in a random order
    nouns = [_noun_phrase(rng, objects[i]) for i in order]
    phrases = [_motion_phrases(motions[i]) for i in order]
    setting = f"{_pick(rng, floor_phrases)} {_pick(rng, background.phrases)}"
    pattern = int(rng.integers(3))
    if pattern == 0:  # "A red ball bounces, while a blue cube slides to the left, on a stone floor under a sky."
        clauses = [f"{noun} {_pick(rng, finite)}" for noun, (finite, _) in zip(nouns, phrases, strict=True)]
        if len(clauses) == 1:
            body = clauses[0]
        elif len(clauses) == 2:
            body = _pick(rng, [", and ", ", while ", " as "]).join(clauses)
        else:
            body = f"{clauses[0]}, {clauses[1]} and {clauses[2]}"
        sentence = f"{body}, {setting}"
    elif pattern == 1:  # "On a stone floor under a sky, a red ball bounces and a blue cube slides to the left."
        clauses = [f"{noun} {_pick(rng, finite)}" for noun, (finite, _) in zip(nouns, phrases, strict=True)]
        body = clauses[0] if len(clauses) == 1 else ", ".join(clauses[:-1]) + " and " + clauses[-1]
        sentence = f"{setting[0].upper()}{setting[1:]}, {body}"
    else:  # "A red ball bouncing next to a blue cube sliding to the left, on a stone floor under a sky."
        parts = [f"{noun} {_pick(rng, participle)}" for noun, (_, participle) in zip(nouns, phrases, strict=True)]
        body = parts[0]
        for part in parts[1:]:
            body += f" {_pick(rng, _RELATIONS)} {part}"
        sentence = f"{body}, {setting}"
    return sentence[0].upper() + sentence[1:] + "."
