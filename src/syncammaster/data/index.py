"""One index of a dataset in the SynCamVideo layout: its scenes, their usable cameras, rigs and captions.

```
ROOT/
  metadata.csv                                  columns file_name,text: one row per video, file_name relative to
                                                ROOT/train, e.g. "f24_aperture5/scene1/videos/cam01.mp4"
  train/<subset>/<scene>/videos/camNN.mp4       synchronized videos, same length and size
  train/<subset>/<scene>/cameras/camera_extrinsics.json
  train/<subset>/<scene>/cameras/intrinsics.json  (optional)
```

Every data error is found here, once, when the index is built: a missing, unreadable or truncated video, a video
whose length or size differs from the rest of its scene, a missing or invalid camera file, a camera listed in the
metadata but absent from the camera file, a malformed metadata row. The bad item (one view, or the whole scene when
its cameras are unusable) is skipped and counted, and one summary line is issued as a :class:`DataWarning`; with
``strict=True`` the first problem raises a one-line :class:`DatasetError` instead. Nothing downstream (caching,
datasets) needs to guess or retry.
"""

from __future__ import annotations

import csv
import json
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from tqdm.auto import tqdm

from ..atomic import write_atomically
from ..cameras import CameraError, CameraRig, Intrinsics
from ..jsonfile import read_json
from ..scene import EXTRINSICS_FILE, INTRINSICS_FILE, video_file
from ..video import FrameCount, VideoError, count_frames

__all__ = [
    "DataWarning",
    "DatasetError",
    "IndexProblem",
    "IndexedScene",
    "SceneIndex",
]

METADATA_FILE = "metadata.csv"
VIDEOS_FOLDER = "train"  # metadata file names are relative to ROOT/train
INDEX_FORMAT = "syncammaster-scene-index"
INDEX_VERSION = 1
MAX_EXAMPLES = 3  # problem examples quoted per kind in the summary line
DEFAULT_PROBE_WORKERS = 8  # PyAV releases the GIL while decoding, so threads probe videos in parallel

# "<scene>/videos/<camera>.mp4", where <scene> is e.g. "<subset>/<scene>".
_VIDEO_ROW = re.compile(r"(?P<scene>.+)/videos/(?P<camera>[^/]+)\.mp4")


class DatasetError(ValueError):
    """A dataset that cannot be used as asked. The message is one line: the problem and the fix."""


class DataWarning(UserWarning):
    """Items of a dataset were skipped; the message counts them and names a few."""


# ----------------------------------------------------------------------------------------------------------------
# Problems
# ----------------------------------------------------------------------------------------------------------------

# Problem kinds, in the order the summary lists them: kind -> (singular, plural). Every kind but "different caption"
# drops the item it names.
_PROBLEM_NAMES: dict[str, tuple[str, str]] = {
    "bad metadata row": ("bad metadata row", "bad metadata rows"),
    "missing camera file": ("missing camera file", "missing camera files"),
    "invalid camera file": ("invalid camera file", "invalid camera files"),
    "camera not in camera file": ("camera missing from its camera file", "cameras missing from their camera files"),
    "missing video": ("missing video", "missing videos"),
    "corrupt video": ("corrupt video", "corrupt videos"),
    "mismatched video": ("video of another length or size", "videos of another length or size"),
    "too few camera poses": ("camera file with fewer poses than frames", "camera files with fewer poses than frames"),
    "invalid intrinsics file": ("invalid intrinsics file (ignored)", "invalid intrinsics files (ignored)"),
    "different caption": ("scene with differing captions (first kept)", "scenes with differing captions (first kept)"),
}
# Kinds that do not drop anything: counted in the summary, never raised by strict=True.
_NOTICE_KINDS = ("invalid intrinsics file", "different caption")


@dataclass(frozen=True)
class IndexProblem:
    """One problem found while building the index.

    Args:
        kind: one of the keys of ``_PROBLEM_NAMES`` (e.g. "corrupt video").
        item: what it concerns, relative to ROOT/train ("f24/scene1/videos/cam03.mp4", "f24/scene1", or the metadata
            row number).
        detail: the reason, one line.
    """

    kind: str
    item: str
    detail: str

    @property
    def drops_item(self) -> bool:
        return self.kind not in _NOTICE_KINDS

    def message(self) -> str:
        return f"{_PROBLEM_NAMES[self.kind][0]} {self.item} ({self.detail})"


# ----------------------------------------------------------------------------------------------------------------
# Videos
# ----------------------------------------------------------------------------------------------------------------


def _count_or_error(path: Path) -> FrameCount | str:
    """``count_frames``'s result, or its error message (for thread-pool maps that must not stop at the first)."""
    try:
        return count_frames(path)
    except VideoError as e:
        return str(e)


# ----------------------------------------------------------------------------------------------------------------
# Index
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexedScene:
    """One usable scene.

    Args:
        name: the scene's folder relative to ROOT/train, POSIX form ("<subset>/<scene>").
        caption: its text (the first metadata row's, when rows differ).
        cameras: names of the cameras with a usable video, in the camera file's order (sorted names).
        rig: those cameras (``CameraRig``, static or per-frame, from the scene's camera_extrinsics.json).
        num_frames, height, width: of every video of the scene; None when the index was built without
            checking videos.
        intrinsics: from cameras/intrinsics.json when present and valid, else None.
    """

    name: str
    caption: str
    cameras: tuple[str, ...]
    rig: CameraRig = field(repr=False, compare=False)
    num_frames: int | None = None
    height: int | None = None
    width: int | None = None
    intrinsics: Intrinsics | None = None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "caption": self.caption,
            "cameras": list(self.cameras),
            # OpenCV-axis camera-to-world matrices in training units (see syncammaster.cameras); floats are written
            # with Python's shortest repr, so load() gives back exactly these numbers.
            "c2w": self.rig.c2w.tolist(),
            "num_frames": self.num_frames,
            "height": self.height,
            "width": self.width,
            "intrinsics": None if self.intrinsics is None else asdict(self.intrinsics),
        }

    @classmethod
    def from_dict(cls, data: dict) -> IndexedScene:
        intrinsics = None if data["intrinsics"] is None else Intrinsics(**data["intrinsics"])
        rig = CameraRig(np.array(data["c2w"], dtype=np.float64), data["cameras"])
        return cls(
            name=data["name"],
            caption=data["caption"],
            cameras=tuple(data["cameras"]),
            rig=rig,
            num_frames=data["num_frames"],
            height=data["height"],
            width=data["width"],
            intrinsics=intrinsics,
        )


@dataclass
class _PendingScene:
    """A scene while the index is being built."""

    name: str
    caption: str
    cameras: list[str] = field(default_factory=list)  # in metadata order
    rig: CameraRig | None = None
    intrinsics: Intrinsics | None = None


class SceneIndex:
    """The usable scenes of one SynCamVideo-layout root and what was skipped. Build with :meth:`build`.

    Attributes:
        root: the dataset root (holding metadata.csv and train/).
        scenes: the usable scenes, in metadata order.
        problems: everything found wrong, in the order found (``summary()`` counts them).
        num_listed_scenes, num_listed_videos: scenes and videos named by metadata.csv.
    """

    def __init__(
        self,
        root: str | Path,
        scenes: Sequence[IndexedScene],
        problems: Sequence[IndexProblem] = (),
        num_listed_scenes: int | None = None,
        num_listed_videos: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.scenes = list(scenes)
        self.problems = list(problems)
        self.num_listed_scenes = len(self.scenes) if num_listed_scenes is None else num_listed_scenes
        self.num_listed_videos = self.num_videos if num_listed_videos is None else num_listed_videos
        self._by_name = {scene.name: scene for scene in self.scenes}
        if len(self._by_name) != len(self.scenes):
            raise DatasetError("an index lists a scene twice; scene names must be unique")

    # -- access --------------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.scenes)

    def __iter__(self) -> Iterator[IndexedScene]:
        return iter(self.scenes)

    def __getitem__(self, name: str) -> IndexedScene:
        """The scene named ``name`` ("<subset>/<scene>")."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no scene {name!r} in the index of {self.root}") from None

    @property
    def num_videos(self) -> int:
        return sum(len(scene.cameras) for scene in self.scenes)

    def scene_dir(self, scene: IndexedScene | str) -> Path:
        name = scene.name if isinstance(scene, IndexedScene) else scene
        return self.root / VIDEOS_FOLDER / name

    def video_path(self, scene: IndexedScene | str, camera: str) -> Path:
        return self.scene_dir(scene) / video_file(camera)

    def summary(self) -> str:
        """One line: what was skipped and why, e.g. "skipped 1 of 3 scenes and 5 of 12 videos: 1 corrupt video
        (s/scene2/videos/cam03.mp4), 1 missing camera file (s/scene3)"."""
        skipped_scenes = self.num_listed_scenes - len(self.scenes)
        skipped_videos = self.num_listed_videos - self.num_videos
        head = f"skipped {skipped_scenes} of {self.num_listed_scenes} scenes and {skipped_videos} of "
        head += f"{self.num_listed_videos} videos"
        by_kind: dict[str, list[str]] = {}
        for problem in self.problems:
            by_kind.setdefault(problem.kind, []).append(problem.item)
        parts = []
        for kind, (singular, plural) in _PROBLEM_NAMES.items():
            items = by_kind.get(kind, [])
            if items:
                examples = ", ".join(items[:MAX_EXAMPLES]) + (", ..." if len(items) > MAX_EXAMPLES else "")
                parts.append(f"{len(items)} {singular if len(items) == 1 else plural} ({examples})")
        return head + (": " + ", ".join(parts) if parts else "")

    def __repr__(self) -> str:
        return f"SceneIndex({self.root}: {len(self.scenes)} scenes, {self.num_videos} videos)"

    # -- building ------------------------------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        root: str | Path,
        strict: bool = False,
        check_videos: bool = True,
        num_workers: int | None = None,
        progress: bool = True,
    ) -> SceneIndex:
        """Scan ``root``'s metadata.csv and scene folders once.

        Args:
            root: a dataset root in the SynCamVideo layout (module docstring).
            strict: raise :class:`DatasetError` at the first problem that would skip an item, instead of skipping
                it (differing captions and an invalid optional intrinsics file are only counted).
            check_videos: decode every video (:func:`~syncammaster.video.count_frames`) to find corrupt, truncated
                and mismatched ones and to record the scenes' frame count and size (as displayed); ``False`` only
                checks that the files exist.
            num_workers: threads decoding videos (default 8).
            progress: show a progress bar while decoding videos.

        Returns:
            the index; if anything was skipped, a :class:`DataWarning` with :meth:`summary` was issued.
        """
        root = Path(root)
        # 1. Read metadata.csv: one row per video, grouped into scenes in order of first appearance.
        rows = _read_metadata(root)
        problems: list[IndexProblem] = []

        def found(kind: str, item: str, detail: str) -> None:
            problem = IndexProblem(kind, item, detail)
            if strict and problem.drops_item:
                raise DatasetError(
                    f"{root}: {problem.message()}; fix it, or build the index with strict=False to skip it"
                )
            problems.append(problem)

        pending: dict[str, _PendingScene] = {}
        listed_videos: set[tuple[str, str]] = set()
        caption_differs: set[str] = set()
        for row_number, file_name, caption in rows:
            where = f"row {row_number} of {METADATA_FILE}"
            path = PurePosixPath(file_name)
            match = _VIDEO_ROW.fullmatch(file_name)
            if path.is_absolute() or ".." in path.parts or "\\" in file_name or match is None:
                found("bad metadata row", where, f"file_name {file_name!r} is not '<subset>/<scene>/videos/<cam>.mp4'")
                continue
            name, camera = match["scene"], match["camera"]
            if (name, camera) in listed_videos:
                continue  # the same video listed twice is one video
            listed_videos.add((name, camera))
            scene = pending.setdefault(name, _PendingScene(name, caption))
            if caption != scene.caption and name not in caption_differs:
                caption_differs.add(name)
                found("different caption", name, f"the text of {where} differs from the scene's first row")
            scene.cameras.append(camera)

        # 2. Cameras: the rig of every scene; a scene without a usable camera file is dropped whole.
        for name, scene in list(pending.items()):
            scene_dir = root / VIDEOS_FOLDER / name
            extrinsics = scene_dir / EXTRINSICS_FILE
            if not extrinsics.is_file():
                found("missing camera file", name, f"no {EXTRINSICS_FILE}")
                del pending[name]
                continue
            try:
                rig = CameraRig.from_syncamvideo_json(extrinsics)
            except CameraError as e:
                found("invalid camera file", name, str(e))
                del pending[name]
                continue
            known = []
            for camera in scene.cameras:
                if camera in rig.names:
                    known.append(camera)
                else:
                    found("camera not in camera file", f"{name}/{video_file(camera)}", f"no {camera} in {extrinsics}")
            scene.cameras = [camera for camera in rig.names if camera in known]  # the camera file's order
            scene.rig = rig
            intrinsics_file = scene_dir / INTRINSICS_FILE
            if intrinsics_file.is_file():
                try:
                    scene.intrinsics = Intrinsics.from_json(intrinsics_file)
                except CameraError as e:
                    found("invalid intrinsics file", name, str(e))

        # 3. Videos: present, and (check_videos) decodable, complete, and of the scene's common length and size.
        for name, scene in pending.items():
            present = []
            for camera in scene.cameras:
                if (root / VIDEOS_FOLDER / name / video_file(camera)).is_file():
                    present.append(camera)
                else:
                    found("missing video", f"{name}/{video_file(camera)}", "file does not exist")
            scene.cameras = present

        infos: dict[tuple[str, str], FrameCount | str] = {}
        if check_videos:
            keys = [(name, camera) for name, scene in pending.items() for camera in scene.cameras]
            paths = [root / VIDEOS_FOLDER / name / video_file(camera) for name, camera in keys]
            workers = DEFAULT_PROBE_WORKERS if num_workers is None else max(1, num_workers)
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = pool.map(_count_or_error, paths)
                bar = tqdm(results, total=len(paths), desc="checking videos", unit="video", disable=not progress)
                infos = dict(zip(keys, bar, strict=True))

        scenes: list[IndexedScene] = []
        for name, scene in pending.items():
            if check_videos:
                cameras, info = _consistent_videos(name, scene.cameras, infos, found)
            else:
                cameras, info = scene.cameras, None
            if not cameras:
                continue
            rig = scene.rig.select(cameras)
            if info is not None and not rig.is_static and rig.num_frames < info.num_frames:
                found(
                    "too few camera poses",
                    name,
                    f"{rig.num_frames} poses per camera for {info.num_frames}-frame videos",
                )
                continue
            scenes.append(
                IndexedScene(
                    name=name,
                    caption=scene.caption,
                    cameras=tuple(cameras),
                    rig=rig,
                    num_frames=None if info is None else info.num_frames,
                    height=None if info is None else info.height,
                    width=None if info is None else info.width,
                    intrinsics=scene.intrinsics,
                )
            )

        # 4. One counted warning for everything skipped.
        num_listed_scenes = len({name for name, _ in listed_videos})
        index = cls(root, scenes, problems, num_listed_scenes=num_listed_scenes, num_listed_videos=len(listed_videos))
        if problems:
            warnings.warn(f"{root}: {index.summary()}", DataWarning, stacklevel=2)
        return index

    # -- JSON ----------------------------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the index as JSON (atomically: a temporary file in the same folder, then renamed)."""
        data = {
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "root": str(self.root.absolute()),
            "num_listed_scenes": self.num_listed_scenes,
            "num_listed_videos": self.num_listed_videos,
            "problems": [asdict(problem) for problem in self.problems],
            "scenes": [scene.to_dict() for scene in self.scenes],
        }
        return write_atomically(path, json.dumps(data, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> SceneIndex:
        """Read an index written by :meth:`save` (no file of the dataset is read again)."""
        path = Path(path)
        data = read_json(path, "build it again", what="scene index", expect=None)
        if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT or data.get("version") != INDEX_VERSION:
            raise DatasetError(f"{path} is not a version-{INDEX_VERSION} scene index; build it again")
        try:
            return cls(
                data["root"],
                [IndexedScene.from_dict(scene) for scene in data["scenes"]],
                [IndexProblem(**problem) for problem in data["problems"]],
                num_listed_scenes=data["num_listed_scenes"],
                num_listed_videos=data["num_listed_videos"],
            )
        except (KeyError, TypeError, CameraError) as e:
            raise DatasetError(f"scene index {path} is malformed ({e}); build it again") from None


def _read_metadata(root: Path) -> list[tuple[int, str, str]]:
    """(row number, file_name, text) of every row of ROOT/metadata.csv; row numbers count the header as row 1."""
    path = root / METADATA_FILE
    if not path.is_file():
        raise DatasetError(f"{root} has no {METADATA_FILE}; a dataset root holds metadata.csv and train/")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            if "file_name" not in columns or "text" not in columns:
                raise DatasetError(f"{path} has columns {columns}; it needs file_name and text")
            return [(number, row["file_name"] or "", row["text"] or "") for number, row in enumerate(reader, 2)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"cannot read {path}: {e}") from None


def _consistent_videos(
    name: str,
    cameras: list[str],
    infos: dict[tuple[str, str], FrameCount | str],
    found: Callable[[str, str, str], None],
) -> tuple[list[str], FrameCount | None]:
    """The cameras whose video decodes and has the scene's common frame count and size (the most frequent one)."""
    decoded = []
    for camera in cameras:
        info = infos[(name, camera)]
        if isinstance(info, str):
            found("corrupt video", f"{name}/{video_file(camera)}", info)
        else:
            decoded.append(camera)
    if not decoded:
        return [], None
    common = Counter(infos[(name, camera)] for camera in decoded).most_common(1)[0][0]  # ties: the first camera's
    usable = []
    for camera in decoded:
        info = infos[(name, camera)]
        if info == common:
            usable.append(camera)
        else:
            found(
                "mismatched video",
                f"{name}/{video_file(camera)}",
                f"{info.num_frames} frames of {info.width}x{info.height}, the scene's others have "
                f"{common.num_frames} of {common.width}x{common.height}",
            )
    return usable, common
