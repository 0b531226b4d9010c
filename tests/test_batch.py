"""generate --prompts: many scenes into one data set, resumed, shared over processes; bad lines in one line each."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from syncammaster.batch import SCENE_FILE, Processes
from syncammaster.cli import main
from syncammaster.compilation import CompileError, check_compile
from syncammaster.data.index import SceneIndex
from syncammaster.render.dataset import scene_seed
from syncammaster.scene import Scene, write_video

from tiny import CAPTIONS, tiny_pipeline
from videos import assert_same_video

# Small and quick: no guidance (one branch), 5 frames of 16x32, 2 steps.
FLAGS = ["--frames", "5", "--height", "16", "--width", "32", "--steps", "2", "--guidance-scale", "1", "--views", "2"]
SCENES = "train/generated"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "tiny"
    tiny_pipeline().save_pretrained(folder)
    return folder


def write_lines(path: Path, lines: list) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def frames(folder: Path) -> np.ndarray:
    return np.stack(Scene.read(folder).videos)  # (V, T, H, W, 3)


def assert_same_frames(first: Path, second: Path) -> None:
    """Two scene folders hold the same videos, up to H.264 (``videos.SAME_VIDEO_LEVELS``)."""
    assert_same_video(frames(first), frames(second), f"{first} and {second}")


def test_batch_writes_a_dataset_the_index_reads(model_dir, tmp_path, capsys):
    prompts = write_lines(tmp_path / "scenes.jsonl", [
        {"prompt": CAPTIONS[0], "rig": "orbit", "views": 3, "seed": 11},
        "",  # blank lines are skipped and do not count
        {"prompt": CAPTIONS[1]},
        {"prompt": CAPTIONS[2], "negative_prompt": "blurry", "seed": 4},
    ])
    out = tmp_path / "data"
    code, stdout, err = run(["generate", "--prompts", str(prompts), "--out", str(out), "--model", str(model_dir),
                             "--seed", "3", *FLAGS], capsys)
    assert code == 0, err
    assert "wrote 3 scenes" in stdout

    # The SynCamVideo layout that training and caching read: every scene, every camera, the captions.
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the index skips nothing
        index = SceneIndex.build(out, strict=True, progress=False)
    assert [scene.name for scene in index] == [f"generated/scene000{k}" for k in range(3)]
    assert [scene.cameras for scene in index] == [("cam01", "cam02", "cam03"), ("cam01", "cam02"), ("cam01", "cam02")]
    assert [scene.caption for scene in index] == CAPTIONS
    assert all((scene.num_frames, scene.height, scene.width) == (5, 16, 32) for scene in index)
    recorded = json.loads((out / SCENES / "scene0001" / SCENE_FILE).read_text())
    assert recorded["seed"] == scene_seed(3, 1) and recorded["prompt"] == CAPTIONS[1]

    # Each scene is the one `generate --prompt` makes with the scene's seed (its own, or drawn from --seed and k).
    for k, extra in [(0, ["--rig", "orbit", "--views", "3", "--seed", "11"]),
                     (1, ["--seed", str(scene_seed(3, 1))]),
                     (2, ["--negative-prompt", "blurry", "--seed", "4"])]:
        single = tmp_path / f"single{k}"
        code, _, err = run(["generate", "--prompt", CAPTIONS[k], "--out", str(single), "--model", str(model_dir),
                            "--quiet", *FLAGS, *extra], capsys)
        assert code == 0, err
        assert_same_frames(out / SCENES / f"scene000{k}", single)
        assert sorted(p.name for p in (out / SCENES / f"scene000{k}").iterdir()) == sorted(
            [*(p.name for p in single.iterdir()), SCENE_FILE])


def test_plain_text_prompts_and_a_second_run(model_dir, tmp_path, capsys):
    prompts = write_lines(tmp_path / "prompts.txt", [CAPTIONS[0], CAPTIONS[1]])
    out = tmp_path / "data"
    argv = ["generate", "--prompts", str(prompts), "--out", str(out), "--model", str(model_dir), "--quiet", *FLAGS]
    assert run(argv, capsys)[0] == 0
    first = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}

    # Again: nothing is made again (the scene files stay as they were); one more line makes one more scene.
    write_lines(prompts, [CAPTIONS[0], CAPTIONS[1], CAPTIONS[2]])
    code, stdout, err = run(argv[:-len(FLAGS) - 1] + FLAGS, capsys)  # not quiet: the summary line
    assert code == 0, err
    assert "wrote 1 scene (2 already there)" in stdout
    for path, mtime in first.items():
        if path.name != "metadata.csv":
            assert path.stat().st_mtime_ns == mtime, path
    assert len(SceneIndex.build(out, strict=True, progress=False)) == 3

    # Other settings for a finished scene: refused before any work, in one line; nothing changes.
    before = sorted(out.rglob("*"))
    code, _, err = run([*argv, "--steps", "3"], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "scene0000 was generated with other settings (steps differ" in err
    assert sorted(out.rglob("*")) == before


def test_bad_lines_are_reported_one_line_each_and_the_rest_is_made(model_dir, tmp_path, capsys):
    (tmp_path / "folder.mp4").mkdir()
    write_video(tmp_path / "short.mp4", np.zeros((3, 16, 32, 3), np.uint8))  # fewer frames than the 5 to make
    (tmp_path / "corrupt.mp4").write_bytes(b"not a video")
    prompts = write_lines(tmp_path / "scenes.jsonl", [
        {"prompt": CAPTIONS[0]},  # line 1: fine
        '{"prompt": "unclosed',  # 2: not JSON
        {"prompt": CAPTIONS[1], "colour": "red"},  # 3: unknown key
        {"prompt": CAPTIONS[1], "views": "two"},  # 4: wrong type
        {"rig": "orbit"},  # 5: no prompt
        ["a list"],  # 6: not an object
        {"prompt": CAPTIONS[1], "seed": True},  # 7: a bool is not a seed
        {"prompt": CAPTIONS[1], "video": "missing.mp4"},  # 8: missing video
        {"prompt": CAPTIONS[1], "video": "folder.mp4"},  # 9: a folder
        {"prompt": CAPTIONS[1], "video": "corrupt.mp4"},  # 10: unreadable video
        {"prompt": CAPTIONS[1], "video": "short.mp4"},  # 11: too short
        {"prompt": CAPTIONS[1], "rig": "no_such_rig"},  # 12: a rig that does not load
        {"prompt": CAPTIONS[1], "views": 0},  # 13: no view
        {"prompt": "  "},  # 14: empty prompt
        {"prompt": CAPTIONS[2], "seed": 1},  # 15: fine
    ])
    out = tmp_path / "data"
    code, _, err = run(["generate", "--prompts", str(prompts), "--out", str(out), "--model", str(model_dir),
                        "--quiet", *FLAGS], capsys)
    assert code == 1
    lines = err.strip().splitlines()
    expected = {2: "not JSON", 3: "unknown key 'colour'", 4: "'views' must be a whole number", 5: 'no "prompt"',
                6: "a JSON list where a JSON object is needed", 7: "'seed' must be a whole number",
                8: "missing.mp4 does not exist", 9: "is a folder", 10: "cannot decode video",
                11: "gives 3 frames at 15 fps, fewer than the 5", 12: "neither a camera preset",
                13: '"views" must be >= 1', 14: '"prompt" is empty'}
    for number, needle in expected.items():
        reported = [line for line in lines if f"scenes.jsonl line {number}:" in line]
        assert len(reported) == 1 and needle in reported[0], (number, lines)
    assert "13 of 15 scenes failed" in lines[-1] and len(lines) == len(expected) + 1
    assert sorted(p.name for p in (out / SCENES).iterdir()) == ["scene0000", "scene0014"]
    assert len(SceneIndex.build(out, strict=True, progress=False)) == 2


@pytest.mark.parametrize("content,needle", [("", "holds no prompt"), ("\n  \n", "holds no prompt"),
                                            (None, "does not exist")])
def test_empty_or_missing_file_is_one_line(tmp_path, capsys, content, needle):
    prompts = tmp_path / "prompts.txt"
    if content is not None:
        prompts.write_text(content)
    code, _, err = run(["generate", "--prompts", str(prompts), "--out", str(tmp_path / "data")], capsys)
    assert code == 1 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists()


def test_rank_count_that_does_not_divide_is_one_line(tmp_path, capsys, monkeypatch):
    prompts = write_lines(tmp_path / "prompts.txt", [CAPTIONS[0]])
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    code, _, err = run(["generate", "--prompts", str(prompts), "--out", str(tmp_path / "data"),
                        "--ranks-per-scene", "2"], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "--ranks-per-scene 2 does not divide the 3 processes; give one of 1, 3" in err
    assert not (tmp_path / "data").exists()
    assert Processes(world_size=4, rank=3, ranks_per_scene=2).group == 1
    assert [Processes(4, rank, 2).makes(5) for rank in range(4)] == [False, False, True, True]


def test_ranks_per_scene_needs_prompts(tmp_path, capsys):
    code, _, err = run(["generate", "--prompt", "x", "--out", str(tmp_path / "o"), "--ranks-per-scene", "2"], capsys)
    assert code == 1 and "--ranks-per-scene needs --prompts" in err


def test_compile_is_refused_where_it_cannot_work(tmp_path):
    with pytest.raises(CompileError, match="works on cpu and cuda devices, not meta"):
        check_compile("meta")
    # A CPU without a C++ compiler (inductor reads CXX when it is imported: a fresh process).
    prompts = write_lines(tmp_path / "prompts.txt", [CAPTIONS[0]])
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from syncammaster.cli import main; sys.exit(main(sys.argv[1:]))",
         "generate", "--prompts", str(prompts), "--out", str(tmp_path / "data"), "--compile", "--device", "cpu"],
        capture_output=True, text=True, env={**os.environ, "CXX": str(tmp_path / "no-compiler")}, timeout=300)
    assert result.returncode == 1 and "--compile on a CPU needs a C++ compiler" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists()


# ---------------------------------------------------------------------------------------------------------------
# Several processes, and a run that is killed
# ---------------------------------------------------------------------------------------------------------------

needs_console = pytest.mark.skipif(shutil.which("torchrun") is None or shutil.which("syncammaster") is None,
                                   reason="torchrun or the syncammaster console script is not on PATH")
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def syncammaster(*argv, processes: int = 1, **kwargs):
    """``syncammaster ARGV`` in one process, or under ``torchrun`` in several; one thread each."""
    command = ["syncammaster", *argv] if processes == 1 else [
        "torchrun", "--standalone", f"--nproc-per-node={processes}", "--no-python", "syncammaster", *argv]
    return subprocess.run(command, capture_output=True, text=True, env=ONE_THREAD, timeout=600, **kwargs)


def same_dataset(first: Path, second: Path) -> None:
    """The same scene folders: the same files, records and index, and the same frames (up to H.264)."""
    names = sorted(p.name for p in (first / SCENES).iterdir())
    assert names == sorted(p.name for p in (second / SCENES).iterdir())
    assert (first / "metadata.csv").read_text() == (second / "metadata.csv").read_text()
    for name in names:
        a, b = first / SCENES / name, second / SCENES / name
        assert sorted(p.relative_to(a) for p in a.rglob("*")) == sorted(p.relative_to(b) for p in b.rglob("*"))
        assert (a / SCENE_FILE).read_text() == (b / SCENE_FILE).read_text()
        assert_same_frames(a, b)


@pytest.mark.slow
@needs_console
def test_two_processes_make_the_scenes_one_process_makes(model_dir, tmp_path):
    prompts = write_lines(tmp_path / "scenes.jsonl", [
        {"prompt": CAPTIONS[k % 3], **({"seed": k} if k % 2 else {}), **({"rig": "orbit"} if k == 4 else {})}
        for k in range(6)])
    argv = ["generate", "--prompts", str(prompts), "--model", str(model_dir), *FLAGS]
    one = syncammaster(*argv, "--out", str(tmp_path / "one"), "--quiet")
    assert one.returncode == 0, one.stderr[-2000:]
    two = syncammaster(*argv, "--out", str(tmp_path / "two"), processes=2)
    assert two.returncode == 0, two.stderr[-2000:]
    assert two.stdout.count("wrote 3 scenes") == 1  # rank 0 reports its share
    # The same scenes: each process makes its scenes as the one process does (one thread each, the same seeds); the
    # frames are compared up to float rounding, which can differ between processes (as between runs of test_cli's).
    same_dataset(tmp_path / "one", tmp_path / "two")

    # Two processes sharing each scene (its views): the same scenes up to float rounding.
    shared = syncammaster(*argv, "--out", str(tmp_path / "shared"), "--ranks-per-scene", "2", "--quiet",
                          processes=2)
    assert shared.returncode == 0, shared.stderr[-2000:]
    for k in range(6):
        difference = frames(tmp_path / "shared" / SCENES / f"scene000{k}").astype(float) - frames(
            tmp_path / "one" / SCENES / f"scene000{k}")
        assert np.abs(difference).mean() < 1.0  # 8-bit levels; another seed differs by far more

    # A rank count that does not divide, under torchrun: every process refuses, rank 0 says it once.
    bad = syncammaster(*argv, "--out", str(tmp_path / "bad"), "--ranks-per-scene", "3", processes=2)
    assert bad.returncode != 0
    assert [line for line in bad.stderr.splitlines() if "error:" in line] == [
        "syncammaster generate: error: --ranks-per-scene 3 does not divide the 2 processes; give one of 1, 2"]


@pytest.mark.slow
@needs_console
def test_a_killed_batch_resumes_without_redoing_finished_scenes(model_dir, tmp_path):
    prompts = write_lines(tmp_path / "prompts.txt", [CAPTIONS[k % 3] for k in range(5)])
    argv = ["generate", "--prompts", str(prompts), "--model", str(model_dir), "--quiet", *FLAGS]
    out = tmp_path / "killed"
    process = subprocess.Popen(["syncammaster", *argv, "--out", str(out)], env=ONE_THREAD,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # kill it once two scenes are done, while it makes the third
        deadline = time.monotonic() + 300
        while len(list(out.glob(f"{SCENES}/*/{SCENE_FILE}"))) < 2 and process.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob(f"{SCENES}/*/{SCENE_FILE}")}
    assert 2 <= len(finished) < 5
    # Only whole scenes are in place (what was in progress is in a hidden staging folder, if anywhere).
    assert sorted(p.name for p in (out / SCENES).iterdir() if not p.name.startswith(".")) == sorted(finished)

    again = syncammaster(*argv, "--out", str(out))
    assert again.returncode == 0, again.stderr[-2000:]
    for name, mtime in finished.items():
        assert (out / SCENES / name / SCENE_FILE).stat().st_mtime_ns == mtime  # not made again
    assert [p.name for p in (out / SCENES).iterdir() if p.name.startswith(".")] == []  # leftovers cleaned

    whole = syncammaster(*argv, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-2000:]
    # Exact when run alone; once, in a full suite on a loaded machine, a resumed scene differed from the uninterrupted
    # one by float-level noise that H.264 turned into a few levels: the scenes are compared as the same videos.
    same_dataset(out, tmp_path / "whole")



@pytest.mark.slow
def test_compiled_batch_makes_the_eager_scenes(model_dir, tmp_path, capsys):
    prompts = write_lines(tmp_path / "prompts.txt", [CAPTIONS[0], CAPTIONS[1]])
    argv = ["generate", "--prompts", str(prompts), "--model", str(model_dir), "--quiet", *FLAGS]
    cached = ["--steps", "6", "--cache", "taylorseer"]  # steps 4 and 5 are extrapolated
    runs = {"eager": [], "compiled": ["--compile"], "eager cached": cached, "compiled cached": [*cached, "--compile"]}
    for name, extra in runs.items():
        code, _, err = run([*argv, "--out", str(tmp_path / name), *extra], capsys)
        assert code == 0, err
    for k in range(2):
        for name in ("eager", "eager cached"):
            eager = frames(tmp_path / name / SCENES / f"scene000{k}").astype(float)
            compiled = frames(tmp_path / name.replace("eager", "compiled") / SCENES / f"scene000{k}")
            assert np.abs(compiled - eager).mean() < 1.0, name  # 8-bit levels: float rounding only
