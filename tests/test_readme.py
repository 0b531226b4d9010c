"""The README as written: every command of its ```bash blocks that needs no downloaded weights runs, in README order,
in a copy of the repository, exactly as written (bash runs the line).

What is not run, by one rule each:
- ``pip install ...`` steps (of a ``&&`` chain): they are CI's own install commands (``.ci/run`` runs them); the rest of
  the chain runs in the environment they made.
- ``python -m pytest``: this test suite, which CI runs.
- a command that needs the released weights, a GPU or the network: it names ``models/`` or ``configs/paper/`` (the
  paper's recipe, whose config reads ``models/``), a repo of the released model on the Hugging Face Hub
  (``Wan-AI/...``, ``KwaiVGI/...``), or ``syncammaster download``.

Inputs the README leaves to the user are made first: ``DATA`` (a dataset rendered by ``syncammaster render``) and
``clip.mp4`` (one of its videos).
"""

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RELEASE_HUB_OWNERS = ("Wan-AI/", "KwaiVGI/")
NEEDS_DOWNLOADS = ("models/", "configs/paper/")
# Top-level folders of a working copy that are outputs, downloads or tool state, not part of the repository.
NOT_COPIED = {".git", ".venv", "venv", "outputs", "runs", "models", "data", "cache", ".pytest_cache", ".ruff_cache"}


def readme_commands() -> list[str]:
    """The commands of the README's bash blocks (also those indented in a list), one per logical line (backslash
    continuations joined)."""
    blocks = re.findall(r"^[ \t]*```bash\n(.*?)^[ \t]*```", README.read_text(encoding="utf-8"), flags=re.S | re.M)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [" ".join(line.split()) for line in lines if line.strip()]


def why_not_run(segment: str) -> str | None:
    """The rule that leaves one ``&&`` step of a README command out, or None: it runs."""
    words = shlex.split(segment, comments=True)
    if words[:2] == ["pip", "install"]:
        return "an install step (CI's .ci/run runs it)"
    if words[:3] == ["python", "-m", "pytest"]:
        return "this test suite (CI runs it)"
    if words[:2] == ["syncammaster", "download"]:
        return "fetches from the Hugging Face Hub"
    if any(word.startswith(NEEDS_DOWNLOADS) for word in words):
        return "needs downloaded weights or data (models/, configs/paper/)"
    if any(word.startswith(RELEASE_HUB_OWNERS) for word in words):
        return "needs the released weights from the Hugging Face Hub"
    return None


def commands_to_run() -> list[str]:
    """Each README command with the steps the rules leave out removed; commands left empty are dropped."""
    kept = []
    for command in readme_commands():
        steps = [step.strip() for step in command.split("&&")]
        runnable = [step for step in steps if why_not_run(step) is None]
        if runnable:
            kept.append(" && ".join(runnable))
    return kept


def test_the_rules_keep_the_cpu_commands():
    """The rules leave the CPU commands to run (the main job among them) and leave out the GPU and install steps."""
    runs = commands_to_run()
    assert any(command.startswith("syncammaster generate --prompt") for command in runs)
    assert not any("pip install" in command or "models/" in command for command in runs)
    left_out = [step for command in readme_commands() for step in command.split("&&") if why_not_run(step.strip())]
    assert any("--checkpoint" in step for step in left_out)  # the released weights


def _copy_of_the_repository(folder: Path) -> Path:
    def ignore(directory: str, names: list[str]) -> set[str]:
        top = NOT_COPIED if Path(directory) == ROOT else set()
        return {name for name in names if name in top or name == "__pycache__" or name.endswith(".egg-info")}

    copy = folder / "repo"
    shutil.copytree(ROOT, copy, ignore=ignore)
    return copy


def _run(command: str, cwd: Path) -> subprocess.CompletedProcess:
    # One torch thread per command: what is checked does not depend on it, and on a CPU shared with other jobs torch's
    # two threads wait on each other (the demo command under a load of 16 on 2 cores: 154 s CPU, 27 s with one thread).
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_readme_commands_run_as_written(tmp_path):
    repo = _copy_of_the_repository(tmp_path)
    # The user's own inputs the README names: a dataset (DATA) and a video (clip.mp4).
    made = _run("syncammaster render --scenes 2 --cameras 3 --frames 17 --size 32 --seed 0 --workers 1 --quiet "
                "--out DATA", repo)
    assert made.returncode == 0, made.stderr
    shutil.copyfile(repo / "DATA/train/procedural/scene0000/videos/cam01.mp4", repo / "clip.mp4")

    for command in commands_to_run():
        result = _run(command, repo)
        assert result.returncode == 0, f"README command failed: {command}\n{result.stderr[-2000:]}"
    assert (repo / "outputs/demo/grid.mp4").is_file()  # what the README says to open
