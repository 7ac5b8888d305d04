#!/usr/bin/env bash
# CI: build the wheel, install it into a fresh venv, and run a short pipeline end to end from an
# empty directory with packaged configs only (no checkout on sys.path, an empty weights cache).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
start=$(date +%s)

echo "== wheel-e2e: building the wheel"
"$python" -m pip wheel -q --no-deps -w "$work/dist" "$repo"
wheel="$(ls "$work"/dist/sea_tf-*.whl)"
# Not `unzip -l | grep -q`: under pipefail, grep quitting at the first match SIGPIPEs unzip.
listing="$(unzip -l "$wheel")"
grep -q "sea_tf/configs/distill/defaults.yaml" <<<"$listing" || { echo "the wheel lacks the packaged configs"; exit 1; }

echo "== wheel-e2e: installing $(basename "$wheel") into a fresh venv"
"$python" -m venv "$work/venv"
quiet_pip() { "$work/venv/bin/pip" "$@" 2> >(grep -v "^WARNING: Location" >&2); }
quiet_pip install -q --upgrade pip
# The wheel's own requirements, pinned to the versions this project is tested with.
quiet_pip install -q -c "$repo/requirements.txt" "$wheel"
bin="$work/venv/bin"

mkdir "$work/run" && cd "$work/run"
export SEA_TF_HOME="$work/home"   # empty weights cache: nothing published is available
unset PYTHONPATH
"$bin/python" - <<'PY'
import sys, sea_tf, device, export
for module in (sea_tf, device, export):
    assert "site-packages" in module.__file__, f"{module.__name__} imported from {module.__file__}, not the wheel"
print("sea-tf", sea_tf.__version__, "from", sea_tf.__file__)
PY
test "$("$bin/sea-tf" --version)" = "sea-tf $("$bin/python" -c 'import sea_tf; print(sea_tf.__version__)')"
"$bin/sea-tf" configs list >/dev/null
"$bin/sea-tf" configs show distill/sea-64 >/dev/null

set -x
"$bin/sea-tf" data make-demo --out data --clips-per-class 1 --upstream 3 \
    --set upstream.min_duration_s=5.0 --set upstream.max_duration_s=5.0
# Never silently untrained: with an empty weights cache the default model is an error with the hint.
if "$bin/sea-tf" embed data/audio/fold1 -o embeddings 2> embed.err; then echo "embed ran without weights"; exit 1; fi
grep -q "sea-tf models import" embed.err && test -z "$(ls -A embeddings 2>/dev/null)"
"$bin/sea-tf" teacher-embed --input data/upstream --out shards --teacher l3-mel256-512 --hop-size 0.25 \
    --config teacher/demo --no-progress
"$bin/sea-tf" sample --config sampling/demo --shards shards --m 48 --strategy random --out sample --no-progress
"$bin/sea-tf" reduce fit --config reduce/fit-pca64 --shards shards --sample sample --d 8 --out reducer \
    --set quality.n_heldout=8 --no-progress
"$bin/sea-tf" reduce apply --shards shards --reducer reducer --out targets --no-progress
"$bin/sea-tf" distill --config distill/demo --shards shards --targets targets --out run \
    --set student.overrides.embedding_size=8 --epochs 1 --steps-per-epoch 2 --set train.time_budget_s=60 --no-progress
"$bin/sea-tf" export run/student.keras --modes fp32,int8 --calibration data/upstream --held-out data/audio \
    --calibration-windows 16 --held-out-windows 8 --runs 3 --out exported --no-progress
int8="$(ls exported/*.int8.tflite)"
"$bin/python" -m device.bench --model "$int8" --runs 5 --warmup 1 --audio data/audio/fold1/*.wav --json bench.json --quiet
"$bin/python" -c "import json; r = json.load(open('bench.json')); assert r['status'] == 'complete' and r['latency_ms'], r; print('device.bench ok')"
set +x
echo "== wheel-e2e: passed in $(( $(date +%s) - start )) s"
