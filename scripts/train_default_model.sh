#!/usr/bin/env bash
# Reproduces, from scratch on a CPU, the small SynCamMaster shipped in src/syncammaster/assets/default_model:
# render the procedural world, build the text encoder, train the VAE, cache latents, train the base text-to-video
# transformer, train the multi-view synchronization module, install the result into the package.
# Every step resumes where it stopped: run the same command again after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=runs/default_model
SCENES=${SCENES:-160}
CAMERAS=${CAMERAS:-6}

time syncammaster render --scenes "$SCENES" --cameras "$CAMERAS" --frames 17 --size 128 --seed 1000 --out "$RUN/data"
time syncammaster train --config configs/small/text.toml
time syncammaster train --config configs/small/vae.toml
time syncammaster train --config configs/small/base.toml
time syncammaster train --config configs/small/sync.toml
time syncammaster train --config configs/small/vae_decoder.toml
python - <<'PY'
import shutil
from pathlib import Path

from syncammaster.cli import default_model_dir

# The trained pipeline, with the VAE whose decoder was fine-tuned on full clips (same encoder, same latents).
source, decoder, target = Path("runs/default_model/export"), Path("runs/default_model/final/vae"), default_model_dir()
shutil.rmtree(target, ignore_errors=True)
shutil.copytree(source, target)
shutil.rmtree(target / "vae")
shutil.copytree(decoder, target / "vae")
print(f"installed {source} (+ {decoder}) -> {target}")
PY
