"""The released 1.3B size on a CPU: writing, loading and converting a checkpoint, and one bf16 forward.

Run from the repository root:

    python benchmarks/big_checkpoint.py [--layers N] [--workdir DIR] [--keep]

Writes a released-format checkpoint (``torch.save`` of the whole DiT state dict under the original Wan key names, as
``step20000.ckpt`` is) of the real SynCamMaster-1.3B shape (D=1536, 12 heads, 30 layers, FFN 8960, text dim 4096,
with the MVS module) holding random bf16 weights. The key list comes from ``tests/reference_syncammaster.py``, written
out from the released layout independently of the converter. Then, each in a fresh process so that its peak resident
memory (VmHWM of /proc/self/status: the high-water mark of the process's resident set, file-backed pages of a
memory-mapped file included) is its own:

- "imports": torch, diffusers and syncammaster imported, nothing loaded (the floor under every other row);
- "load": ``SynCamMasterTransformer3DModel.from_official_checkpoint(ckpt, torch_dtype=bf16)``;
- "load + forward": the same, then one forward in bf16 of 2 views x 5 frames (2 latent frames) at 64x64 pixels
  (8x8 latents) with 16 text tokens;
- "convert": ``syncammaster convert ckpt --out DIR --dtype bf16`` (load, then a diffusers safetensors folder).

"x ckpt" is the peak over the checkpoint's size on disk. ``--layers`` writes fewer blocks (a quick run); the
numbers in RESULTS.md are from the full 30.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import Stopwatch, add_results_argument, load_average, machine_line, markdown_table, write_results

ROOT = Path(__file__).resolve().parents[1]
# SynCamMaster-1.3B (Wan2.1-T2V-1.3B plus the MVS module).
SIZE_1_3B = {"dim": 1536, "num_heads": 12, "num_layers": 30, "ffn_dim": 8960, "in_channels": 16, "out_channels": 16,
             "text_dim": 4096, "freq_dim": 256}

# Each measurement runs as its own process: a small script that prints one JSON line.
MEASURE = r"""
import json, sys, time
import torch
import syncammaster.cli
from syncammaster import SynCamMasterTransformer3DModel

phase, checkpoint, out = sys.argv[1], sys.argv[2], sys.argv[3]
torch.set_num_threads(int(sys.argv[4]))
result = {}
start = time.perf_counter()
if phase in ("load", "forward"):
    model = SynCamMasterTransformer3DModel.from_official_checkpoint(checkpoint, torch_dtype=torch.bfloat16)
    result["load_s"] = time.perf_counter() - start
    result["dtypes"] = sorted({str(p.dtype) for p in model.parameters()})
    result["parameters"] = sum(p.numel() for p in model.parameters())
if phase == "forward":
    generator = torch.Generator().manual_seed(0)
    views = 2
    latents = torch.randn(views, 16, 2, 8, 8, generator=generator).bfloat16()
    text = torch.randn(views, 16, model.config.text_dim, generator=generator).bfloat16()
    cameras = torch.randn(views, 2, 12, generator=generator).bfloat16()
    start = time.perf_counter()
    with torch.no_grad():
        output = model(latents, 500.0, text, camera_embedding=cameras, num_views=views).sample
    result["forward_s"] = time.perf_counter() - start
    result["finite"] = bool(torch.isfinite(output.float()).all())
    result["output_shape"] = list(output.shape)
if phase == "convert":
    code = syncammaster.cli.main(["convert", checkpoint, "--out", out, "--dtype", "bf16"])
    result["convert_s"] = time.perf_counter() - start
    result["exit_code"] = code
# VmHWM: this process's own high-water mark (ru_maxrss would also count the parent's, recorded at exec).
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
result["peak_rss_bytes"] = int(status["VmHWM"].split()[0]) * 1024
print(json.dumps(result))
"""


def write_checkpoint(path: Path, num_layers: int) -> int:
    """Random bf16 weights in the released format; returns the number of weights."""
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from reference_syncammaster import RefConfig, official_state_dict_shapes

    config = RefConfig(**{**SIZE_1_3B, "num_layers": num_layers})
    generator = torch.Generator().manual_seed(0)
    state = {}
    for name, shape in official_state_dict_shapes(config).items():
        fan_in = shape[1] if len(shape) >= 2 else shape[0]
        tensor = torch.empty(shape, dtype=torch.bfloat16)
        tensor.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=generator)
        if name.endswith(("norm_q.weight", "norm_k.weight", "norm3.weight")):
            tensor.add_(1.0)  # norm gains around one
        state[name] = tensor
    torch.save(state, path)
    return sum(t.numel() for t in state.values())


def measure(phase: str, checkpoint: Path, out: Path, threads: int) -> dict:
    result = subprocess.run([sys.executable, "-c", MEASURE, phase, str(checkpoint), str(out), str(threads)],
                            capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"{phase} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=SIZE_1_3B["num_layers"], help="blocks to write (default 30)")
    parser.add_argument("--workdir", default=None, help="where to write the checkpoint (default: a temporary folder)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads of the forward (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the checkpoint and the converted folder")
    add_results_argument(parser)
    args = parser.parse_args()

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="big_checkpoint-"))
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = workdir / "step20000.ckpt"
    machine = machine_line()
    print(machine)
    with Stopwatch() as clock:
        weights = write_checkpoint(checkpoint, args.layers)
    checkpoint_bytes = checkpoint.stat().st_size
    print(f"wrote {checkpoint} ({weights / 1e9:.3f} B weights, {checkpoint_bytes / 2**30:.2f} GiB, "
          f"{args.layers} layers) in {clock.wall:.0f} s")

    rows = []
    for phase, label in (("imports", "imports"), ("load", "load"), ("forward", "load + forward"),
                         ("convert", "convert")):
        result = measure(phase, checkpoint, workdir / "converted", args.threads)
        rows.append((label, result))
        print(f"  {label}: {json.dumps(result)}", flush=True)

    table = [["phase", "peak RSS GiB", "x ckpt", "seconds"]]
    for label, result in rows:
        seconds = result.get("load_s", 0) + result.get("forward_s", 0) + result.get("convert_s", 0)
        peak = result["peak_rss_bytes"]
        table.append([label, f"{peak / 2**30:.2f}", f"{peak / checkpoint_bytes:.2f}", f"{seconds:.1f}"])
    print()
    print(markdown_table(table))
    forward = dict(rows)["load + forward"]
    summary = (f"checkpoint {checkpoint_bytes / 2**30:.2f} GiB; parameters {forward['parameters'] / 1e9:.3f} B "
               f"({', '.join(forward['dtypes'])}); forward {forward['forward_s']:.1f} s, output "
               f"{forward['output_shape']} finite={forward['finite']}; threads {args.threads}; load average (1, 5, 15 "
               f"min) at end {load_average()}")
    print(f"\n{summary}")
    if args.results:
        write_results("big_checkpoint.py", f"{markdown_table(table)}\n\n{summary[0].upper()}{summary[1:]}.", machine,
                      f"a released-format 1.3B checkpoint of random weights, {args.layers} layers")
    if not args.keep:
        checkpoint.unlink()
        converted = workdir / "converted"
        if converted.exists():
            for file in sorted(converted.rglob("*"), reverse=True):
                file.unlink() if file.is_file() else file.rmdir()
            converted.rmdir()


if __name__ == "__main__":
    main()
