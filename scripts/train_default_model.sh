#!/usr/bin/env bash
# Reproduces, from scratch on a CPU, the small SynCamMaster shipped in src/syncammaster/assets/default_model:
# render the procedural world, build the text encoder, train the VAE (three stages), cache latents, train the base
# text-to-video transformer, train the multi-view synchronization module, fine-tune it for novel views of a given
# video, train the novel-view adapter (a LoRA used only with a given video), install the result into the package.
# Every step resumes where it stopped: run the same command again after an interruption. Start from an empty
# runs/default_model: finished stages found there are not trained again.
# The vocabulary, the VAE and the novel-view adapter learn from the first 160 scenes (data/); the transformers from 480
# (all/: those 160 and 320 more rendered with another seed, in subset "extra").
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=runs/default_model
CAMERAS=6

time syncammaster render --scenes 160 --cameras $CAMERAS --frames 17 --size 128 --seed 1000 --out "$RUN/data"
time syncammaster render --scenes 320 --cameras $CAMERAS --frames 17 --size 128 --seed 2000 --out "$RUN/more"
RUN="$RUN" python - <<'PY'
# $RUN/all: one SynCamVideo-layout root over both renders (links to their scene folders, one metadata.csv).
import csv
import os
from pathlib import Path

run = Path(os.environ["RUN"])
rows = []
for subset, source in (("procedural", "data"), ("extra", "more")):
    link = run / "all" / "train" / subset
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(Path("..", "..", source, "train", "procedural"))
    with open(run / source / "metadata.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            rows.append([subset + row["file_name"].removeprefix("procedural"), row["text"]])
with open(run / "all" / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
    csv.writer(handle).writerows([["file_name", "text"], *rows])
print(f"{run / 'all'}: {len(rows)} videos")
PY
time syncammaster train --config configs/small/text.toml
time syncammaster train --config configs/small/vae.toml
time syncammaster train --config configs/small/vae_decoder.toml
time syncammaster train --config configs/small/vae_images.toml
time syncammaster train --config configs/small/base.toml
time syncammaster train --config configs/small/sync.toml
time syncammaster train --config configs/small/sync_reference.toml
time syncammaster train --config configs/small/sync_novel_view_lora.toml
python - <<'PY'
import shutil
from pathlib import Path

from syncammaster.app import default_model_dir

source, target = Path("runs/default_model/export_novel_view"), default_model_dir()
shutil.rmtree(target, ignore_errors=True)
shutil.copytree(source, target)
print(f"installed {source} -> {target}")
PY
