#!/usr/bin/env bash
# Train a zoo tier in the background and commit each run's measurements as soon as it is measured.
# Resumable: runs committed under data/zoo/<tier>/runs are neither trained nor measured again, and an
# unfinished run continues from its last complete checkpoint. JOBS runs train at once (one thread each).
#   nohup bash scripts/zoo_tier.sh cpu2 > runs/cpu2-driver.log 2>&1 &
#   JOBS=1 nohup bash scripts/zoo_tier.sh long > runs/long-driver.log 2>&1 &
set -uo pipefail
cd "$(dirname "$0")/.."
TIER=${1:-cpu2}
JOBS=${JOBS:-2}
CACHE=${ARCHCAST_CACHE:-$HOME/.cache/archcast}
RUNS=$CACHE/zoo/$TIER/runs
OUT=runs/$TIER-extract
DATA=data/zoo/$TIER
mkdir -p runs "$DATA/runs"
if ! pgrep -f "zoo run --tier $TIER" >/dev/null; then
  .venv/bin/archcast zoo run --tier "$TIER" --jobs "$JOBS" --threads 1 --cheapest-first --cache "$CACHE" >> "runs/$TIER-train.log" 2>&1 &
fi

commit() {  # commit only these files; retry while another git command holds the index
  local message=$1; shift
  for _ in $(seq 20); do
    git add -- "$@" && git commit -q -m "$message" -- "$@" && return 0
    sleep 7
  done
  echo "could not commit: $message" >&2
}

while true; do
  for run in "$RUNS"/*; do
    name=$(basename "$run")
    [ -f "$run/run.json" ] || continue
    [ -f "$DATA/runs/$name.json" ] && continue
    # a run trained without a fixed first token is measured as it was trained
    bos=$(.venv/bin/python -c "import json,sys; print('on' if json.load(open(sys.argv[1]))['spec']['recipe']['bos'] else 'off')" "$run/run.json")
    cmd="archcast extract --dirs $run --model-id $name --out $OUT/$name --seq-len 128 --n-seq 10 --batch-size 5 --threads 1 --bos $bos"
    echo "$(date -u +%FT%TZ) measuring $name"
    if .venv/bin/$cmd >> "runs/$TIER-extract.log" 2>&1 &&
       .venv/bin/python -m training.zoo_tier add --run "$run" --metrics "$OUT/$name" --tier-dir "$DATA" --command "$cmd"; then
      commit "zoo $TIER: run $name measured and committed (metrics, config, provenance)" "$DATA/runs/$name.parquet" "$DATA/runs/$name.json" "$DATA/configs/$name.json"
      echo "$(date -u +%FT%TZ) committed $name"
      # the data card follows the data (figures, tables, noise floor); a failure here loses no run
      .venv/bin/python -m training.tier_card --tier-dir "$DATA" > /dev/null 2>> "runs/$TIER-extract.log" &&
        commit "zoo $TIER: data card with $name" "$DATA/README.md" "$DATA/runs.csv" "$DATA/figures"
    else
      echo "$(date -u +%FT%TZ) measuring $name failed; see runs/$TIER-extract.log" >&2
    fi
  done
  pgrep -f "zoo run --tier $TIER" >/dev/null || break
  sleep 60
done
echo "$(date -u +%FT%TZ) training finished; every finished run is committed"
