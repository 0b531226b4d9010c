"""Many scenes in one run: ``syncammaster generate --prompts FILE --out DIR``, in one process or many.

FILE holds one scene a line, either as JSON Lines (the first non-blank line starts with ``{``)::

    {"prompt": "a red ball rolls across a wooden floor", "rig": "orbit", "views": 3, "seed": 7}
    {"prompt": "a dog runs on a beach", "video": "dog.mp4", "video_view": "cam02"}

with the keys ``prompt`` (required) and ``rig``, ``views``, ``seed``, ``video``, ``video_view``,
``negative_prompt`` (each optional: the command's flag of the same name gives what a line leaves out), or as plain
text, one prompt a line, the flags giving the rest. Blank lines are skipped; relative paths in a line (``rig``,
``video``) are relative to FILE's folder. Scene k (the k-th non-blank line, from 0) is seeded with the line's
``seed``, else with a seed drawn from ``--seed`` and k, so a scene comes out the same whichever process makes it and
whichever other lines FILE holds.

The model loads once, and the scenes make a data set in the SynCamVideo layout, as ``syncammaster render`` writes
one (``train``, ``cache``, ``evaluate`` and ``export`` read it as it is)::

    DIR/
      metadata.csv                            file_name,text: one row per video of each finished scene
      train/generated/scene0000/              a scene folder as ``generate`` writes one, plus:
        generate.json                         what the scene was generated with

Each scene folder is written whole or not at all (built beside its place, then moved in), so a run that is stopped
loses at most the scene in progress, and running the same command again skips the finished scenes. A scene folder
whose ``generate.json`` records other settings (an edited line, another flag) stops the run before any work.

Under ``torchrun`` the processes share the scenes: scene k goes to the group of ``--ranks-per-scene`` processes
numbered ``k % groups``; a group of one makes its scenes alone (data parallel), a larger group splits each scene's
guidance branches and views as a single ``generate`` does (``syncammaster.parallel``), and its first process writes.

A line that cannot be made (malformed, a missing or unreadable video, a rig that does not load) is reported in one
line naming its line number; the other scenes go on, and the command exits non-zero at the end.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .app import (
    RIG_PLOT_FILE,
    CommandError,
    add_loras_and_step_cache,
    check_step_cache,
    default_model_dir,
    draw_rig,
    generate_scene,
    join_processes,
    load_pipeline,
    read_reference_video,
    reference_view_index,
    start_up,
)
from .atomic import save_atomically, write_atomically
from .jsonfile import read_json

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: metadata.csv is written without a lock
    fcntl = None

# The keys of a JSON line and the JSON types each takes (a bool is not a number here).
LINE_KEYS: dict[str, tuple[type, ...]] = {
    "prompt": (str,),
    "rig": (str,),
    "views": (int,),
    "seed": (int,),
    "video": (str,),
    "video_view": (int, str),
    "negative_prompt": (str,),
}
TRAIN_DIR = "train"  # under DIR; metadata.csv names videos relative to it
SUBSET = "generated"  # DIR/train/<subset>/sceneNNNN
METADATA_FILE = "metadata.csv"
SCENE_FILE = "generate.json"  # in each scene folder: what it was generated with
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit seed


@dataclass(frozen=True)
class SceneRequest:
    """One line of the prompts file, with the command's flags filled in where the line is silent."""

    index: int  # the scene's number: scene{index:04d}, counting the non-blank lines from 0
    line: int  # its line in the file, from 1
    prompt: str
    rig: str  # a preset name or a camera_extrinsics.json path
    views: int | None  # the first N cameras of the rig; None: all
    seed: int
    video: str | None  # novel views of this video, or None
    video_view: str  # with ``video``: its camera, an index or a name
    negative_prompt: str | None  # None: the model's


@dataclass(frozen=True)
class Processes:
    """This process's place among the processes of a ``torchrun`` batch (one process: rank 0 of 1)."""

    world_size: int
    rank: int
    ranks_per_scene: int

    @classmethod
    def from_environment(cls, ranks_per_scene: int) -> Processes:
        """Reads ``WORLD_SIZE`` and ``RANK`` (as torchrun sets them); a group size that does not divide is refused."""
        world_size, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
        if world_size % ranks_per_scene:
            divisors = [k for k in range(1, world_size + 1) if world_size % k == 0]
            raise CommandError(
                f"--ranks-per-scene {ranks_per_scene} does not divide the {world_size} process"
                f"{'es' if world_size > 1 else ''}; give one of {', '.join(map(str, divisors))}"
            )
        return cls(world_size, rank, ranks_per_scene)

    @property
    def num_groups(self) -> int:
        return self.world_size // self.ranks_per_scene

    @property
    def group(self) -> int:
        """The group this process makes scenes with."""
        return self.rank // self.ranks_per_scene

    @property
    def writes(self) -> bool:
        """Whether this process writes its group's scenes (the group's first)."""
        return self.rank % self.ranks_per_scene == 0

    def makes(self, index: int) -> bool:
        """Whether this process's group makes scene ``index``."""
        return index % self.num_groups == self.group


# ---------------------------------------------------------------------------------------------------------------
# The prompts file
# ---------------------------------------------------------------------------------------------------------------


def read_prompts(path: str | Path, args) -> tuple[list[SceneRequest], list[tuple[int, str]]]:
    """The scenes of a prompts file and the problems of its bad lines, ``(line number, problem)``.

    ``args`` are the parsed ``generate`` flags, which fill in what a line leaves out. Raises ``CommandError`` when
    the file cannot be read or holds no prompt at all.
    """
    from .render.dataset import scene_seed

    path = Path(path)
    if path.is_dir():
        raise CommandError(f"--prompts {path} is a folder; give a JSON Lines or text file, one scene a line")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CommandError(f"--prompts {path} does not exist; give a JSON Lines or text file, one scene a line") \
            from None
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"cannot read --prompts {path} ({error}); give a UTF-8 text file") from None
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise CommandError(f"--prompts {path} holds no prompt; write one scene a line (a prompt, or a JSON object)")
    as_json = lines[0][1].startswith("{")
    requests, problems = [], []
    for index, (number, line) in enumerate(lines):
        try:
            fields = _json_line(line) if as_json else {"prompt": line}
        except ValueError as error:
            problems.append((number, str(error)))
            continue
        seed = fields.get("seed")
        requests.append(SceneRequest(
            index=index,
            line=number,
            prompt=fields["prompt"],
            rig=_relative_to(fields["rig"], path.parent) if "rig" in fields else args.rig,
            views=fields.get("views", args.views),
            seed=scene_seed(args.seed, index) if seed is None else seed,
            video=_relative_to(fields["video"], path.parent) if "video" in fields else args.video,
            video_view=str(fields.get("video_view", args.video_view)),
            negative_prompt=fields.get("negative_prompt", args.negative_prompt),
        ))
    return requests, problems


def _json_line(line: str) -> dict:
    """The fields of one JSON line, checked; ``ValueError`` (one line) names what is wrong."""
    try:
        fields = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error.msg} at column {error.colno}); write one JSON object a line, "
                         'e.g. {"prompt": "a red ball rolls on a floor"}') from None
    if not isinstance(fields, dict):
        raise ValueError(f"a JSON {type(fields).__name__} where a JSON object is needed, e.g. "
                         '{"prompt": "a red ball rolls on a floor"}')
    unknown = [key for key in fields if key not in LINE_KEYS]
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}; the keys are {', '.join(LINE_KEYS)}")
    if "prompt" not in fields:
        raise ValueError('no "prompt"; every line needs one')
    for key, value in fields.items():
        types = LINE_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, types):
            wanted = " or ".join("a string" if t is str else "a whole number" for t in types)
            raise ValueError(f"{key!r} must be {wanted}, got {json.dumps(value)}")
    if not fields["prompt"].strip():
        raise ValueError('"prompt" is empty; give the caption of the scene')
    if "views" in fields and fields["views"] < 1:
        raise ValueError(f'"views" must be >= 1, got {fields["views"]}')
    if "seed" in fields and not 0 <= fields["seed"] <= MAX_SEED:
        raise ValueError(f'"seed" must be a whole number from 0 to {MAX_SEED}, got {fields["seed"]}')
    return fields


def _relative_to(value: str, folder: Path) -> str:
    """A rig or video named in a line: preset names as they are, relative paths from the prompts file's folder."""
    from .cameras import list_presets

    if value in list_presets() or Path(value).is_absolute():
        return value
    return str(folder / value)


# ---------------------------------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedScene:
    """A scene that can be made: its request, rig, reference camera and the settings ``generate.json`` records."""

    request: SceneRequest
    rig: object  # CameraRig
    reference_view: int
    settings: dict

    @property
    def name(self) -> str:
        return f"scene{self.request.index:04d}"


def scene_dir(out: Path, index: int) -> Path:
    return out / TRAIN_DIR / SUBSET / f"scene{index:04d}"


def _common_settings(args) -> dict:
    """The flags every scene of the run is generated with (what changes the videos), for ``generate.json``."""
    model = args.model if args.model is not None or args.wan is not None else default_model_dir()
    return {
        "model": None if model is None else str(Path(model).resolve()),
        "wan": None if args.wan is None else str(Path(args.wan).resolve()),
        "checkpoint": None if args.checkpoint is None else str(Path(args.checkpoint).resolve()),
        "lora": [[str(Path(path).resolve()), scale] for path, scale in args.lora],
        "frames": args.frames,
        "height": args.height,
        "width": args.width,
        "steps": args.steps,
        "guidance_scale": args.guidance_scale,
        "sync": not args.no_sync,
        "reference_mode": args.reference_mode,
        "cache": args.cache,
        "cache_threshold": args.cache_threshold,
        "dtype": args.dtype,
        "fps": args.fps,
    }


def plan(requests: list[SceneRequest], args) -> tuple[list[PlannedScene], list[tuple[int, str]]]:
    """Checks what each scene needs before any model is loaded: its rig loads, its video exists, its camera is one
    of the rig's. Returns the scenes that can be made and the problems of the others, ``(line number, problem)``."""
    from .cameras import CameraError, CameraRig

    common = _common_settings(args)
    planned, problems = [], []
    for request in requests:
        try:
            rig = CameraRig.load(request.rig, num_views=request.views)
            reference_view = 0
            if request.video is not None:
                video = Path(request.video)
                if video.is_dir():
                    raise CommandError(f"video {video} is a folder; give a video file")
                if not video.is_file():
                    raise CommandError(f"video {video} does not exist; check the path (relative paths in a line "
                                       "start from the prompts file's folder)")
                reference_view = reference_view_index(rig, request.video_view)
            elif request.video_view != "0":
                raise CommandError("video_view needs a video (the given view)")
        except (CommandError, CameraError) as error:
            problems.append((request.line, " ".join(str(error).split())))
            continue
        settings = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "rig": request.rig,
            "cameras": rig.names,
            "seed": request.seed,
            "video": None if request.video is None else str(Path(request.video).resolve()),
            "video_view": reference_view if request.video is not None else None,
            **common,
        }
        planned.append(PlannedScene(request, rig, reference_view, settings))
    return planned, problems


def finished(out: Path, scene: PlannedScene) -> bool:
    """Whether the scene's folder is there, made with the same settings; a folder made otherwise is refused."""
    folder = scene_dir(out, scene.request.index)
    if not folder.exists():
        return False
    record = folder / SCENE_FILE
    if not record.exists():
        raise CommandError(f"{folder} exists but is not a scene of a --prompts run (no {SCENE_FILE}); move it away "
                           "or choose another --out")
    recorded = read_json(record, f"remove {folder} to make the scene again")
    if recorded != scene.settings:
        changed = sorted(key for key in scene.settings.keys() | recorded.keys()
                         if recorded.get(key) != scene.settings.get(key))
        raise CommandError(
            f"{folder} was generated with other settings ({', '.join(changed)} differ from line "
            f"{scene.request.line} and the flags); give the same ones to resume, or choose another --out"
        )
    return True


# ---------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------


def write_scene(folder: Path, scene, rig_png: bytes, settings: dict) -> Path:
    """Writes a generated scene's folder whole: built beside ``folder``, then moved into place."""
    record = (json.dumps(settings, indent=1, ensure_ascii=False) + "\n").encode()

    def save(staging: Path) -> None:
        scene.write(staging, grid=True, extra_files={RIG_PLOT_FILE: rig_png, SCENE_FILE: record})

    return save_atomically(save, folder)


@contextlib.contextmanager
def _locked(folder: Path):
    """An exclusive lock on ``folder`` itself (so that processes writing into it take turns)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def write_metadata(out: Path, scenes: list[PlannedScene]) -> int:
    """``DIR/metadata.csv``, one row per video of each finished scene of ``scenes``; returns how many are listed.

    Every process writes it after its last scene, taking turns on a lock, so the last one to finish lists all.
    """
    with _locked(out):
        done = [scene for scene in scenes if (scene_dir(out, scene.request.index) / SCENE_FILE).is_file()]
        text = io.StringIO(newline="")
        writer = csv.writer(text)
        writer.writerow(["file_name", "text"])
        for scene in done:
            writer.writerows([f"{SUBSET}/{scene.name}/videos/{camera}.mp4", scene.request.prompt]
                             for camera in scene.rig.names)
        write_atomically(out / METADATA_FILE, text.getvalue())
    return len(done)


# ---------------------------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------------------------


def _report(where: str, line: int, problem: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"syncammaster generate: error: {where} line {line}: {problem}", file=sys.stderr)


def run_batch(args) -> None:
    """``generate --prompts FILE --out DIR``: every scene of FILE into the data set DIR (module docstring)."""
    from tqdm import tqdm

    from .compilation import check_compile, compile_transformer

    # 1. Check the file, every scene and the output folder before any model is loaded.
    processes = Processes.from_environment(args.ranks_per_scene)
    requests, problems = read_prompts(args.prompts, args)
    num_lines = len(requests) + len(problems)
    scenes, unusable = plan(requests, args)
    problems = sorted(problems + unusable)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} is a file; give a folder for the data set")
    todo = [scene for scene in scenes if processes.makes(scene.request.index) and not finished(out, scene)]
    cache_threshold = check_step_cache(args)
    if args.cache is not None and processes.ranks_per_scene > 1:
        raise CommandError("--cache does not combine with --ranks-per-scene > 1 (each process would skip different "
                           "steps); drop --cache or use --ranks-per-scene 1")
    if args.compile:
        check_compile(args.device)
    if processes.rank == 0:
        for line, problem in problems:
            _report(args.prompts, line, problem)

    # 2. Load the model once (under torchrun, each group of --ranks-per-scene processes shares each scene).
    group = join_processes(args)
    if group is not None and processes.ranks_per_scene == 1:
        group = None  # each process makes whole scenes
    elif group is not None and processes.ranks_per_scene < processes.world_size:
        import torch.distributed as dist

        group, _ = dist.new_subgroups(group_size=processes.ranks_per_scene)
    failed = []
    made = 0
    if todo:
        with start_up():  # imports and loading with the cycle collector paused
            pipe = load_pipeline(args, novel_view_adapter=any(scene.request.video is not None for scene in todo))
            add_loras_and_step_cache(pipe, args, cache_threshold)
            if args.compile:
                compile_transformer(pipe)
        pipe.set_progress_bar_config(desc="denoising", leave=False, disable=args.quiet)
        out.mkdir(parents=True, exist_ok=True)
        mine = sum(processes.makes(scene.request.index) for scene in scenes)
        rig_plots: dict[tuple[str, int | None], bytes] = {}
        with tqdm(total=mine, initial=mine - len(todo), unit="scene", desc="scenes", disable=args.quiet) as bar:
            for scene in todo:
                try:
                    _make_scene(pipe, scene, args, out, group, processes.writes, rig_plots)
                    made += 1
                except (CommandError, ValueError, OSError) as error:  # bad input: SceneError, CameraError, ...
                    failed.append(scene.request.line)
                    if processes.writes:
                        _report(args.prompts, scene.request.line, " ".join(str(error).split()))
                bar.update()

    # 3. The data set's index, and the verdict.
    listed = write_metadata(out, scenes) if processes.writes and out.is_dir() else 0
    bad = sorted(failed + [line for line, _ in problems])
    if bad:
        raise CommandError(
            f"{len(bad)} of {num_lines} scenes failed (line{'s' if len(bad) > 1 else ''} "
            f"{', '.join(map(str, bad))}); the others are in {out}/, and running the same command again after fixing "
            "those lines makes only the missing ones"
        )
    if not args.quiet:
        kept = sum(processes.makes(scene.request.index) for scene in scenes) - made
        print(f"wrote {made} scene{'' if made == 1 else 's'}" + (f" ({kept} already there)" if kept else "")
              + f" to {out / TRAIN_DIR / SUBSET}/; {out / METADATA_FILE} lists {listed}"
              + ("" if processes.world_size == 1 else " (the last process to finish lists them all)"))


def _make_scene(pipe, scene: PlannedScene, args, out: Path, group, writes: bool, rig_plots: dict) -> None:
    """Generates one planned scene and (``writes``) writes its folder."""
    request = scene.request
    clip = None
    if request.video is not None:
        # As `generate --video`: upright, sampled at the model's training rate unless --video-fps says otherwise.
        num_frames = args.frames or pipe.config.default_num_frames
        fps = args.video_fps or pipe.config.default_fps
        clip = read_reference_video(request.video, num_frames, fps, args.video_start)
    generated = generate_scene(pipe, args, request.prompt, scene.rig, request.seed, request.negative_prompt, clip,
                               scene.reference_view, group)
    if not writes:
        return
    key = (request.rig, request.views)
    if key not in rig_plots:  # one plot per rig of the run
        rig_plots[key] = draw_rig(scene.rig, request.rig)
    write_scene(scene_dir(out, request.index), generated, rig_plots[key], scene.settings)
