"""What every benchmark shares: timing (warm-up, repeats, the median; wall and CPU seconds), tables (markdown for
RESULTS.md, aligned text for the terminal) and the machine line (processor, cores, threads, torch and diffusers
versions, load average, date).

Benchmarks run as scripts from the repository root (``python benchmarks/NAME.py``), so this folder is on ``sys.path``
and they import this module as ``harness``. Timings on a shared machine depend on its load: print
``machine_line()`` at the start and ``load_average()`` at the end, and compare settings side by side in one run.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Stopwatch",
    "Table",
    "cpu_model",
    "fmt",
    "load_average",
    "machine_line",
    "markdown_table",
    "median_seconds",
    "run_timed",
    "synchronize",
    "text_table",
    "add_results_argument",
    "write_results",
]


# ---------------------------------------------------------------------------------------------------- the machine


def cpu_model() -> str:
    """The processor's name: /proc/cpuinfo's "model name" on Linux, else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def load_average() -> str:
    """The 1, 5 and 15 minute load averages as "a, b, c" ("n/a" where the system keeps none)."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def machine_line(device: str = "cpu") -> str:
    """Where and when a benchmark ran, in one line: processor, CPUs (and how many this process may use), torch and
    its thread count, diffusers, python, the load average at this moment and the date."""
    import diffusers
    import torch

    processor = torch.cuda.get_device_name(device) if device.startswith("cuda") else cpu_model()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{processor} ({device}), {os.cpu_count()} CPUs ({usable} usable), torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, diffusers {diffusers.__version__}, python {platform.python_version()}; "
        f"load average (1, 5, 15 min) {load_average()}; {datetime.date.today().isoformat()}"
    )


# ---------------------------------------------------------------------------------------------------- timing


def synchronize(device: Any) -> None:
    """Waits for the device's queued work (CUDA runs asynchronously); nothing to wait for on a CPU."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], Any], warmup: int = 1, repeats: int = 5, device: Any = "cpu") -> float:
    """The median wall time of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class Stopwatch:
    """Wall seconds and this process's CPU seconds (all its threads), ``.wall`` and ``.cpu``: of a ``with`` block, or
    from making it to ``stop()``."""

    def __init__(self) -> None:
        self._start = (time.perf_counter(), time.process_time())
        self.wall = self.cpu = 0.0

    def stop(self) -> Stopwatch:
        self.wall = time.perf_counter() - self._start[0]
        self.cpu = time.process_time() - self._start[1]
        return self

    def __enter__(self) -> Stopwatch:
        self._start = (time.perf_counter(), time.process_time())
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_timed(command: Sequence[str], env: dict | None = None, cwd: str | Path | None = None) -> tuple[float, float]:
    """(wall, user + system CPU seconds) of one command in a child process; SystemExit with its stderr if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(list(command), capture_output=True, text=True, env=env or os.environ, cwd=cwd)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


# ---------------------------------------------------------------------------------------------------- tables


def fmt(value: float | None, digits: int = 1) -> str:
    """A number with thousands separators and ``digits`` decimals; "n/a" for None (a missing value is shown)."""
    return "n/a" if value is None else f"{value:,.{digits}f}"


def text_table(rows: Sequence[Sequence[str]]) -> str:
    """``rows[0]`` as the header, a rule, then the other rows, aligned: the table ``syncammaster evaluate`` prints."""
    from syncammaster.evaluate.report import text_table as evaluate_text_table  # imported when used: it is heavy

    return evaluate_text_table(rows)


def markdown_table(rows: Sequence[Sequence[str]]) -> str:
    """``rows[0]`` as the header; the first column left-aligned, the others right-aligned (they hold numbers)."""
    align = ["---"] + ["---:"] * (len(rows[0]) - 1)
    return "\n".join(f"| {' | '.join(row)} |" for row in [rows[0], align, *rows[1:]])


@dataclass
class Table:
    """One table of a benchmark: a title, its columns and rows (strings), and notes printed under it."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        """For the terminal: the title underlined, the aligned table, the notes indented."""
        body = [self.title, "=" * len(self.title), text_table([self.headers, *self.rows])]
        return "\n".join(body + [f"  {note}" for note in self.notes])

    def markdown(self) -> str:
        """For RESULTS.md: a level-3 heading, then ``body()``."""
        return f"### {self.title}\n\n{self.body()}"

    def body(self) -> str:
        """The table and the notes (a paragraph each), without the heading: what ``write_results`` puts under it."""
        return "\n\n".join([markdown_table([self.headers, *self.rows]), *self.notes])


# ---------------------------------------------------------------------------------------------------- RESULTS.md

RESULTS = Path(__file__).with_name("RESULTS.md")


def results_markers(name: str) -> tuple[str, str]:
    """The two lines that enclose the part of RESULTS.md that the benchmark run ``name`` writes."""
    return f"<!-- generated: {name} -->", f"<!-- /generated: {name} -->"


def write_results(name: str, body: str, machine: str, model: str | None = None, path: Path = RESULTS) -> None:
    """Puts ``body`` (markdown) into ``path`` between ``results_markers(name)``, under a line saying how it was made:
    the command that ran (this process's), the machine line and the model measured.

    The document keeps its order and its prose; only the enclosed part is replaced, whole, atomically. A name with
    no markers in the document stops the run in one line (put the two markers where the tables belong first).
    """
    from syncammaster.atomic import write_atomically

    begin, end = results_markers(name)
    if not path.is_file():
        raise SystemExit(f"{path} does not exist; run from a checkout of the repository, which has it")
    text = path.read_text(encoding="utf-8")
    found = re.search(rf"^{re.escape(begin)}\n.*?^{re.escape(end)}$", text, flags=re.S | re.M)
    if found is None:
        raise SystemExit(f"{path} has no '{begin}' ... '{end}' block; add the two lines where these tables belong")
    command = shlex.join(["python", Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    made = f"Made by `{command}` on {machine}" + (f"; model: {model}" if model else "") + "."
    block = f"{begin}\n{made}\n\n{body.strip()}\n{end}"
    write_atomically(path, text[: found.start()] + block + text[found.end():])
    print(f"wrote {name} into {path}")


SHIPPED_MODEL = "the shipped small model (src/syncammaster/assets/default_model)"


def model_label(model: str | None) -> str:
    """How a results block names the model measured: the folder a user passed, or the shipped model."""
    return str(model) if model else SHIPPED_MODEL


def add_results_argument(parser) -> None:
    """``--results``: write the tables into benchmarks/RESULTS.md (``write_results``) as well as printing them."""
    parser.add_argument("--results", action="store_true",
                        help=f"also write the tables into {RESULTS.relative_to(RESULTS.parents[1])}, replacing "
                        "this benchmark's generated block there")
