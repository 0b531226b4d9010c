"""Where a default ``syncammaster generate`` spends its time, what the recommended cache saves of the whole command,
and many scenes at once: batch, processes, compile.

Run from the repository root:

    python benchmarks/batch.py [--tables phases whole batch processes compile] [--repeats N] [--scenes N]

Tables (timings on a shared machine depend on its load: the load average is printed before and after, CPU seconds
are given beside wall seconds, and the settings compared in one table run in turn, A B A B ...):

- phases: one ``generate`` with the shipped model and the default flags (and with ``--cache taylorseer-lite``), in
  a fresh process per repeat, cut into its phases the way ``syncammaster.cli.generate`` runs them: the interpreter's
  start (timed as ``python -c pass``), the imports (``syncammaster.cli`` and all that loading the model imports:
  torch, diffusers, transformers, ...), loading the model folder, text encoding and denoising, VAE decoding (and the
  conversion to 8-bit frames), waiting for rig.png (drawn by a child process started before the imports; its CPU
  time is not in this process's), writing the scene folder (4 H.264 videos, the grid video, cameras, prompt) and
  the exit, the whole process timed from outside less the rest (in CPU seconds, also the child's drawing). Median
  wall and CPU seconds over the repeats, and each phase's share of the whole.
- whole: the whole default ``syncammaster generate`` command against the same with ``--cache taylorseer-lite`` (the
  recommended cache), each a fresh process timed from outside, run in turn (cached, plain, cached, plain, ...) after
  one unmeasured run of each; median wall and user + system CPU seconds, and the median of the pairs' ratios. With
  ``--against CHECKOUT`` the same pairs also run from another version's ``src/``, both versions in each round.
- batch: the same N scenes (prompts of the shipped model's kind, the ``arc`` rig, seeds 0..N-1) as N single
  ``syncammaster generate --prompt`` commands against one ``syncammaster generate --prompts FILE`` command; whole
  processes timed from outside (wall, and the children's user + system CPU seconds).
- processes: one ``generate --prompts`` of N scenes in one process (2 threads, then 1 thread) against ``torchrun``
  with 2 processes of 1 thread each (each makes half of the scenes); seconds per scene of the whole command.
- compile: one process making N scenes eager and one with ``--compile`` (regional compilation of the transformer
  blocks): the first scene (compiling included) and the median of the later ones, timed inside the process
  (denoising and decoding; loading excluded), and the largest pixel difference between the two runs' videos.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import (
    SHIPPED_MODEL,
    Stopwatch,
    add_results_argument,
    load_average,
    machine_line,
    markdown_table,
    run_timed,
    write_results,
)

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [
    "A large red sphere bounces near a small blue cube, on a grey stone floor under a clear sky.",
    "A yellow cone spins next to a green cylinder on a wooden floor.",
    "Two purple cubes slide across a checkered floor under an orange sky.",
    "A white sphere rolls between three red pillars on a sandy ground.",
]
PHASES = ["interpreter start", "imports", "model loading", "text encoding + denoising", "VAE decoding",
          "waiting for rig.png", "writing the scene folder", "exit (CPU: and the rig.png child)"]


# ---------------------------------------------------------------------------------------------------------------
# phases
# ---------------------------------------------------------------------------------------------------------------


def phase_worker(out: str, extra: list[str]) -> None:
    """One default generate, as ``syncammaster.cli.generate.run`` runs it, with a clock between its phases; prints
    JSON. The CPU seconds are this process's; the child drawing rig.png is not counted in them."""
    marks = [(time.perf_counter(), time.process_time())]

    def mark() -> None:
        marks.append((time.perf_counter(), time.process_time()))

    from syncammaster.app import (
        BackgroundRigPlot,
        add_loras_and_step_cache,
        check_step_cache,
        generate_scene,
        load_pipeline,
        start_up,
    )
    from syncammaster.cli import build_parser

    with start_up():
        from syncammaster.cameras import CameraRig

        argv = ["generate", "--prompt", PROMPTS[0], "--out", out, "--quiet", *extra]
        args = build_parser(argv).parse_args(argv)
        rig = CameraRig.load(args.rig, num_views=args.views)
        threshold = check_step_cache(args)
        rig_plot = BackgroundRigPlot(rig, args.rig)
        import diffusers  # noqa: F401  (what load_pipeline imports: counted with the imports)
        import transformers  # noqa: F401

        from syncammaster import model_files, pipeline  # noqa: F401
        mark()
        pipe = load_pipeline(args, novel_view_adapter=False)  # as generate without --video
        add_loras_and_step_cache(pipe, args, threshold)
        pipe.set_progress_bar_config(disable=True)
    mark()
    # generate_scene, cut at the end of the denoising: the same pipeline call, decoded apart.
    from syncammaster.pipeline import SynCamMasterPipeline

    decode, timed = SynCamMasterPipeline.decode_latents, []

    def timed_decode(self, latents):
        mark()
        timed.append(True)
        return decode(self, latents)

    SynCamMasterPipeline.decode_latents = timed_decode
    scene = generate_scene(pipe, args, args.prompt, rig, args.seed)
    assert timed, "the pipeline did not decode through decode_latents"
    mark()
    png = rig_plot.png()
    mark()
    from syncammaster.app import RIG_PLOT_FILE

    scene.write(out, grid=True, extra_files={RIG_PLOT_FILE: png})
    mark()
    wall = [b[0] - a[0] for a, b in zip(marks, marks[1:], strict=False)]
    cpu = [b[1] - a[1] for a, b in zip(marks, marks[1:], strict=False)]
    print(json.dumps({"wall": wall, "cpu": cpu}))


def phases(repeats: int) -> str:
    settings = {"default": [], "--cache taylorseer-lite": ["--cache", "taylorseer-lite"]}
    runs: dict[str, list[dict]] = {name: [] for name in settings}
    starts = []
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(repeats):
            starts.append(run_timed([sys.executable, "-c", "pass"]))
            for name, extra in settings.items():
                out = Path(folder) / f"{repeat}{len(runs[name])}{name[:2]}"
                command = [sys.executable, __file__, "--phase-worker", str(out), *extra]
                before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
                result = subprocess.run(command, capture_output=True, text=True, check=True)
                whole_wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
                whole_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                run = json.loads(result.stdout.strip().splitlines()[-1])
                # What the worker's clock misses: its exit, seen from outside (and in CPU, the rig.png child's).
                run["wall"].append(whole_wall - sum(run["wall"]) - starts[-1][0])
                run["cpu"].append(whole_cpu - sum(run["cpu"]) - starts[-1][1])
                runs[name].append(run)
    start_wall = statistics.median(w for w, _ in starts)
    start_cpu = statistics.median(c for _, c in starts)
    tables = []
    for name in settings:
        wall = [start_wall] + [statistics.median(r["wall"][i] for r in runs[name]) for i in range(7)]
        cpu = [start_cpu] + [statistics.median(r["cpu"][i] for r in runs[name]) for i in range(7)]
        rows = [[phase, f"{w:.2f}", f"{c:.2f}", f"{100 * w / sum(wall):.0f}"]
                for phase, w, c in zip(PHASES, wall, cpu, strict=True)]
        rows.append(["total", f"{sum(wall):.2f}", f"{sum(cpu):.2f}", "100"])
        header = ["phase", "wall s", "CPU s", "share of wall %"]
        tables.append(f"generate {name}:\n\n" + markdown_table([header, *rows]))
    return "\n\n".join(tables)


# ---------------------------------------------------------------------------------------------------------------
# batch / processes / compile
# ---------------------------------------------------------------------------------------------------------------


def whole(repeats: int, against: str | None = None) -> str:
    """The whole-command table; ``against``: also the same commands run from that checkout's ``src/`` (another
    version of the package), each round running both versions in turn."""
    versions = {"": None} if against is None else {"this checkout: ": ROOT, f"{against}: ": against}
    settings = {f"{version}generate{flag}": (source, extra) for version, source in versions.items()
                for flag, extra in [(" --cache taylorseer-lite", ["--cache", "taylorseer-lite"]), ("", [])]}
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in settings}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(repeats + 1):  # the first round warms the disk cache and is not counted
            for index, (name, (source, extra)) in enumerate(settings.items()):
                env = None if source is None else {**os.environ, "PYTHONPATH": str(Path(source).resolve() / "src")}
                timing = run_timed(["syncammaster", "generate", "--prompt", PROMPTS[0], "--out",
                               f"{folder}/{repeat}_{index}", *extra], env=env)
                if repeat:
                    runs[name].append(timing)
    rows = []
    names = list(settings)
    for version, (cached_name, plain_name) in zip(versions, zip(names[::2], names[1::2], strict=True), strict=True):
        cached, plain = runs[cached_name], runs[plain_name]
        rows += [[name, f"{statistics.median(w for w, _ in runs[name]):.2f}",
                  f"{statistics.median(c for _, c in runs[name]):.2f}"] for name in (cached_name, plain_name)]
        wall_ratio = statistics.median(p[0] / c[0] for c, p in zip(cached, plain, strict=True))
        cpu_ratio = statistics.median(p[1] / c[1] for c, p in zip(cached, plain, strict=True))
        rows.append([f"{version}plain / cached (median of the pairs)", f"{wall_ratio:.2f}x", f"{cpu_ratio:.2f}x"])
    return markdown_table([["command (shipped model, default flags)", "wall s", "CPU s"], *rows])


def _prompts_file(folder: Path, scenes: int) -> Path:
    path = folder / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": PROMPTS[k % len(PROMPTS)], "seed": k}) + "\n"
                            for k in range(scenes)))
    return path


def batch(scenes: int, repeats: int) -> str:
    singles, batches = [], []
    with tempfile.TemporaryDirectory() as folder:
        prompts = _prompts_file(Path(folder), scenes)
        for repeat in range(repeats):
            wall = cpu = 0.0
            for k in range(scenes):
                w, c = run_timed(["syncammaster", "generate", "--prompt", PROMPTS[k % len(PROMPTS)], "--seed", str(k),
                             "--out", f"{folder}/single{repeat}_{k}", "--quiet"])
                wall, cpu = wall + w, cpu + c
            singles.append((wall, cpu))
            batches.append(run_timed(["syncammaster", "generate", "--prompts", str(prompts), "--out",
                                 f"{folder}/batch{repeat}", "--quiet"]))
    rows = []
    for name, runs in [(f"{scenes} x generate --prompt", singles), (f"generate --prompts ({scenes} lines)", batches)]:
        wall, cpu = statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)
        rows.append([name, f"{wall:.1f}", f"{cpu:.1f}", f"{wall / scenes:.2f}"])
    saved = statistics.median(s[0] - b[0] for s, b in zip(singles, batches, strict=True))
    rows.append(["saved by the batch", f"{saved:.1f}", "", f"{saved / scenes:.2f}"])
    return markdown_table([["command", "wall s", "CPU s", "wall s/scene"], *rows])


def processes(scenes: int) -> str:
    settings = [
        ("1 process x 2 threads", ["syncammaster"], {"OMP_NUM_THREADS": "2"}),
        ("1 process x 1 thread", ["syncammaster"], {"OMP_NUM_THREADS": "1"}),
        ("2 processes x 1 thread (torchrun)",
         ["torchrun", "--standalone", "--nproc-per-node=2", "--no-python", "syncammaster"], {"OMP_NUM_THREADS": "1"}),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        prompts = _prompts_file(Path(folder), scenes)
        for name, launcher, env in settings:
            wall, cpu = run_timed([*launcher, "generate", "--prompts", str(prompts), "--out", f"{folder}/{len(rows)}",
                              "--quiet"], env={**os.environ, "CUDA_VISIBLE_DEVICES": "", **env})
            rows.append([name, f"{wall:.1f}", f"{cpu:.1f}", f"{wall / scenes:.2f}"])
    base = float(rows[0][3])
    for row in rows:
        row.append(f"{base / float(row[3]):.2f}x")
    return markdown_table([["processes", "wall s", "CPU s", "wall s/scene", "scenes/s vs 1 x 2 threads"], *rows])


def compile_worker(compiled: bool, scenes: int, out: str) -> None:
    """``scenes`` default-sized scenes in this process, eager or compiled; prints JSON of seconds per scene."""
    import numpy as np

    from syncammaster.app import default_model_dir
    from syncammaster.cameras import CameraRig
    from syncammaster.pipeline import load_model_folder

    pipe = load_model_folder(default_model_dir())
    pipe.set_progress_bar_config(disable=True)
    if compiled:
        from syncammaster.compilation import check_compile, compile_transformer

        check_compile("cpu")
        compile_transformer(pipe)
    rig, seconds, videos = CameraRig.preset("arc"), [], []
    for k in range(scenes):
        with Stopwatch() as clock:
            videos.append(pipe(PROMPTS[k % len(PROMPTS)], rig, seed=k, output_type="np").videos)
        seconds.append(clock.wall)
    np.save(out, np.stack(videos))
    print(json.dumps(seconds))


def compiled(scenes: int) -> str:
    import numpy as np

    rows, videos = [], {}
    with tempfile.TemporaryDirectory() as folder:
        for name, flag in [("eager", []), ("--compile", ["--compiled"])]:
            out = f"{folder}/{len(rows)}.npy"
            result = subprocess.run([sys.executable, __file__, "--compile-worker", str(scenes), out, *flag],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                raise SystemExit(f"the {name} run failed:\n{result.stderr[-3000:]}")
            seconds = json.loads(result.stdout.strip().splitlines()[-1])
            videos[name] = np.load(out)
            rows.append([name, f"{seconds[0]:.1f}", f"{statistics.median(seconds[1:]):.2f}"])
    for row in rows:
        row.append(f"{float(rows[0][2]) / float(row[2]):.2f}x")
    difference = float(np.abs(videos["eager"] - videos["--compile"]).max()) * 255
    return markdown_table([["transformer", "first scene s", "later scenes s (median)", "steady speed-up"], *rows]) + (
        f"\n\nlargest difference between the eager and compiled videos: {difference:.2f} 8-bit levels")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--phase-worker":
        return phase_worker(sys.argv[2], sys.argv[3:])
    if len(sys.argv) > 1 and sys.argv[1] == "--compile-worker":
        return compile_worker(sys.argv[4:] == ["--compiled"], int(sys.argv[2]), sys.argv[3])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", nargs="+", choices=["phases", "whole", "batch", "processes", "compile"],
                        default=["phases", "whole", "batch", "processes", "compile"])
    parser.add_argument("--repeats", type=int, default=3,
                        help="repeats of the phases, whole and batch tables (default 3)")
    parser.add_argument("--against", default=None, metavar="CHECKOUT",
                        help="whole table: also run the commands from this checkout of another version (its src/), "
                        "in turn with this one's (e.g. git worktree add /tmp/before HEAD~3)")
    parser.add_argument("--scenes", type=int, default=8, help="scenes of the batch, processes, compile tables")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads of every process started (OMP_NUM_THREADS; default: torch's), except "
                        "in the processes table, which sets its own; on a shared machine one thread measures the work "
                        "more than the other jobs")
    add_results_argument(parser)
    args = parser.parse_args()
    if args.threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if shutil.which("syncammaster") is None:
        raise SystemExit("the syncammaster command is not on PATH; install the project (pip install -e .)")
    threads = os.environ.get("OMP_NUM_THREADS", "torch's default")
    machine = f"{machine_line()}; threads per process: {threads}"
    print(machine)
    for name in args.tables:
        with Stopwatch() as clock:
            text = {"phases": lambda: phases(args.repeats), "whole": lambda: whole(args.repeats, args.against),
                    "batch": lambda: batch(args.scenes, args.repeats),
                    "processes": lambda: processes(args.scenes), "compile": lambda: compiled(args.scenes)}[name]()
        print(f"\n### {name} ({clock.wall:.0f} s, load average {load_average()} after)\n\n{text}", flush=True)
        if args.results:
            write_results(f"batch.py {name}", text + f"\n\nLoad average after: {load_average()}.", machine,
                          SHIPPED_MODEL)


if __name__ == "__main__":
    main()
