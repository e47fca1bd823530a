#!/usr/bin/env bash
# Rebuild the committed zoo data set (data/zoo, data/README.md) from scratch on this machine:
# train the CPU tier, measure every checkpoint, assemble metrics, configs, provenance and the data card.
# Resumable: finished runs and measured checkpoints are skipped. ~1 h on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${ARCHCAST_CACHE:-$HOME/.cache/archcast}
OUT=runs/zoo-extract
start=$(date -u +%FT%TZ)
.venv/bin/archcast zoo run --tier cpu --jobs 2 --threads 1 --cache "$CACHE"
# one extraction per finished run (this is also how runs were measured while later ones still trained)
for run in "$CACHE"/zoo/cpu/runs/*; do
  [ -f "$run/run.json" ] || continue
  .venv/bin/archcast extract --dirs "$run" --model-id "$(basename "$run")" --out "$OUT" \
    --seq-len 256 --n-seq 10 --batch-size 5 --threads 1
done
end=$(date -u +%FT%TZ)
cat > runs/zoo-provenance.json <<JSON
{"commands": ["archcast zoo run --tier cpu --jobs 2 --threads 1 --cache $CACHE",
              "for each finished run R: archcast extract --dirs $CACHE/zoo/cpu/runs/R --model-id R --out $OUT --seq-len 256 --n-seq 10 --batch-size 5 --threads 1",
              "python -m training.datacard --runs $CACHE/zoo/cpu/runs --metrics $OUT/metrics.parquet --out data/zoo"],
 "git_commit": "$(git rev-parse HEAD)", "started": "$start", "finished": "$end"}
JSON
.venv/bin/python -m training.datacard --runs "$CACHE/zoo/cpu/runs" --metrics "$OUT/metrics.parquet" --out data/zoo \
  --provenance-extra runs/zoo-provenance.json
