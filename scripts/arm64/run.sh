#!/usr/bin/env bash
# `make test-arm64`: run the board side (device/) on emulated aarch64, as on a Raspberry Pi 4.
#
# Builds, once, under .cache/arm64/ (see ../../../shared/notes/AARCH64.md for why these choices):
#   root/   Debian 12 arm64 python3.11 + the shared libraries it needs (apt-get download + dpkg -x,
#           through a private apt configuration: the machine's apt setup is not touched)
#   qemu/   Debian 13 (trixie) qemu-user 10.0, statically linked. Debian 12's qemu-user-static 7.2
#           imports ai-edge-litert 2.3.0 but SIGSEGVs constructing any Interpreter (with or without
#           XNNPACK, -cpu cortex-a72 or max), while qemu 10.0 runs the same wheel, root and model:
#           the emulator is at fault, so requirements-device.txt keeps ai-edge-litert==2.3.0.
#           SEA_TF_QEMU=/path/to/qemu-aarch64 uses another emulator (e.g. to reproduce that).
#   site/   the board wheels of requirements-device.txt for aarch64/cp311, unpacked
# then exports a model + WAV (scripts/arm64/make_inputs.py, workstation side) and runs
# `python -m device.bench` and `python -m device.listen` (the WAV as a file source) under
# `qemu-aarch64 -cpu cortex-a72 -L root/`, checking them against the same runs natively.
# Anything that cannot be fetched here makes the run SKIP (exit 0) with the reason.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
PY=${PYTHON:-$REPO/.venv/bin/python}
CACHE=${SEA_TF_ARM64_CACHE:-$REPO/.cache/arm64}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
ROOT=$CACHE/root QEMU_DIR=$CACHE/qemu SITE=$CACHE/site WORK=$CACHE/work
mkdir -p "$CACHE"
start=$(date +%s)

skip() { echo "test-arm64: SKIPPED: $*" >&2; exit 0; }
log() { echo "test-arm64: $*" >&2; }

# A private apt: own lists, cache, sources, status; the machine's /etc/apt is not used.
apt_private() {  # apt_private NAME ARCH "SOURCES LINE" -- apt-get args...
    local name=$1 arch=$2 line=$3; shift 4
    local base=$CACHE/apt-$name
    mkdir -p "$base/lists/partial" "$base/archives/partial" "$base/parts" "$base/prefs"
    echo "$line" > "$base/sources.list"
    : > "$base/status"
    apt-get -q -o Dir::State::Lists="$base/lists" -o Dir::State::status="$base/status" \
        -o Dir::Cache="$base" -o Dir::Cache::archives="$base/archives" \
        -o Dir::Etc::sourcelist="$base/sources.list" -o Dir::Etc::sourceparts="$base/parts" \
        -o Dir::Etc::preferencesparts="$base/prefs" -o APT::Architecture="$arch" \
        -o APT::Architectures::="$arch" -o Debug::NoLocking=1 -o APT::Sandbox::User=root "$@"
}

command -v apt-get >/dev/null && command -v dpkg >/dev/null || skip "apt-get/dpkg not found (Debian-based host needed)"
[ -r "$KEYRING" ] || skip "$KEYRING absent (package debian-archive-keyring)"

# 1. qemu-user from trixie (amd64 package, static binary)
QEMU=${SEA_TF_QEMU:-$QEMU_DIR/usr/bin/qemu-aarch64}
if [ ! -x "$QEMU" ]; then
    log "downloading Debian 13 qemu-user"
    apt_private trixie amd64 "deb [signed-by=$KEYRING] $MIRROR trixie main" -- update >/dev/null \
        || skip "cannot reach $MIRROR (trixie) for qemu-user"
    mkdir -p "$CACHE/debs-qemu" && (cd "$CACHE/debs-qemu" && \
        apt_private trixie amd64 "deb [signed-by=$KEYRING] $MIRROR trixie main" -- download qemu-user >/dev/null) \
        || skip "apt-get download qemu-user (trixie) failed"
    # the package holds every target's emulator (~450 MB unpacked); keep only aarch64
    rm -rf "$QEMU_DIR.tmp" && dpkg -x "$CACHE"/debs-qemu/qemu-user_*.deb "$QEMU_DIR.tmp"
    mkdir -p "$QEMU_DIR/usr/bin" && mv "$QEMU_DIR.tmp/usr/bin/qemu-aarch64" "$QEMU_DIR/usr/bin/"
    rm -rf "$QEMU_DIR.tmp" "$CACHE/debs-qemu" "$CACHE/apt-trixie"
fi
"$QEMU" --version | head -1 >&2

# 2. arm64 Python 3.11 root from Debian 12 packages
PKGS="python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libexpat1 zlib1g libssl3
      libffi8 libbz2-1.0 liblzma5 libsqlite3-0 libstdc++6 libgcc-s1 libncursesw6 libtinfo6
      libreadline8 libuuid1 libdb5.3 libgdbm6 libnsl2 libtirpc3 libcrypt1 libzstd1 media-types"
if [ ! -x "$ROOT/usr/bin/python3.11" ]; then
    log "downloading Debian 12 arm64 python3.11 packages"
    line="deb [signed-by=$KEYRING] $MIRROR bookworm main"
    apt_private bookworm arm64 "$line" -- update >/dev/null || skip "cannot reach $MIRROR (bookworm arm64)"
    mkdir -p "$CACHE/debs-arm64"
    (cd "$CACHE/debs-arm64" && apt_private bookworm arm64 "$line" -- download $PKGS >/dev/null) \
        || skip "apt-get download of the arm64 packages failed"
    rm -rf "$ROOT.tmp" && mkdir -p "$ROOT.tmp"
    for deb in "$CACHE"/debs-arm64/*.deb; do dpkg -x "$deb" "$ROOT.tmp"; done
    mv "$ROOT.tmp" "$ROOT"
    rm -rf "$CACHE/debs-arm64" "$CACHE/apt-bookworm"
fi

# 3. board wheels (aarch64, cp311) unpacked into site/
if [ ! -f "$SITE/.complete" ]; then
    log "downloading the aarch64 wheels of requirements-device.txt"
    mkdir -p "$CACHE/wheels"
    # Debian 12 / Raspberry Pi OS 12 have glibc 2.36, so every manylinux tag up to 2_36 installs there.
    plats=""; for v in 2014 _2_17 _2_27 _2_28 _2_31 _2_34 _2_35 _2_36; do plats="$plats --platform manylinux${v}_aarch64"; done
    "$PY" -m pip download -q --only-binary=:all: $plats --python-version 3.11 --implementation cp \
        -d "$CACHE/wheels" -r requirements-device.txt 2>&1 | grep -v "^WARNING: Location" >&2 \
        || true
    ls "$CACHE"/wheels/ai_edge_litert-*aarch64*.whl >/dev/null 2>&1 || skip "pip download of the aarch64 wheels failed"
    rm -rf "$SITE" && mkdir -p "$SITE"
    "$PY" - "$CACHE/wheels" "$SITE" <<'PYEOF'
import sys, zipfile, pathlib
for whl in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    zipfile.ZipFile(whl).extractall(sys.argv[2])
PYEOF
    touch "$SITE/.complete"
fi

# 4. an exported model, a classifier and a WAV (workstation side), the harness copied like on a board
rm -rf "$WORK" && mkdir -p "$WORK/board"
cp -r device "$WORK/board/device" && rm -rf "$WORK/board/device/__pycache__"
"$PY" scripts/arm64/make_inputs.py "$WORK/inputs" > "$WORK/make_inputs.log" 2>&1 \
    || { cat "$WORK/make_inputs.log" >&2; echo "test-arm64: FAILED: could not export the inputs" >&2; exit 1; }
tail -1 "$WORK/make_inputs.log" >&2

# 5. the board side under emulation
log "running device.bench under qemu-aarch64 -cpu cortex-a72"
set +e
(cd "$WORK/board" && PYTHONHOME="$ROOT/usr" PYTHONPATH="$WORK/board:$SITE" PYTHONDONTWRITEBYTECODE=1 \
    timeout 240 "$QEMU" -cpu cortex-a72 -L "$ROOT" "$ROOT/usr/bin/python3.11" -m device.bench \
    $(cat "$WORK/inputs/args") --runs 5 --warmup 1 --json "$WORK/result.json")
rc=$?
set -e
[ $rc -eq 0 ] || { echo "test-arm64: FAILED: device.bench exited $rc under emulation" >&2; exit 1; }
# the same bench natively (x86_64) as the reference for the emulated numbers
(cd "$WORK/board" && "$PY" -m device.bench $(cat "$WORK/inputs/args") --runs 2 --warmup 0 --quiet \
    --json "$WORK/native.json" 2>/dev/null)
"$PY" - "$WORK/result.json" "$WORK/native.json" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
native = json.load(open(sys.argv[2]))
for emu, ref in zip(r["files"], native["files"]):
    assert emu["predicted_class"] == ref["predicted_class"], (emu["predicted_class"], ref["predicted_class"])
    assert abs(emu["confidence"] - ref["confidence"]) < 0.05, (emu["confidence"], ref["confidence"])
env = r["environment"]
assert r["status"] == "complete", r["status"]
assert env["architecture"] == "aarch64", env["architecture"]
assert env["interpreter"]["package"] == "ai-edge-litert", env["interpreter"]
assert r["files"] and all(f["status"] == "ok" and "predicted_class" in f for f in r["files"]), r["files"]
print(f"test-arm64: OK: {r['model']['name']} [{r['model']['mode']}] on {env['architecture']} "
      f"({env['python']}, {env['interpreter']['package']} {env['interpreter']['version']}); "
      f"prediction {r['files'][0]['predicted_class']} ({r['files'][0]['confidence']:.3f}; native x86_64: "
      f"{native['files'][0]['confidence']:.3f})")
PYEOF

# 6. device.listen on the WAV as a file source, emulated and native: same windows, classes, embeddings
log "running device.listen under qemu-aarch64 -cpu cortex-a72"
set +e
(cd "$WORK/board" && PYTHONHOME="$ROOT/usr" PYTHONPATH="$WORK/board:$SITE" PYTHONDONTWRITEBYTECODE=1 \
    timeout 240 "$QEMU" -cpu cortex-a72 -L "$ROOT" "$ROOT/usr/bin/python3.11" -m device.listen \
    $(cat "$WORK/inputs/listen_args") --jsonl "$WORK/listen.jsonl" --embeddings "$WORK/listen.npy")
rc=$?
set -e
[ $rc -eq 0 ] || { echo "test-arm64: FAILED: device.listen exited $rc under emulation" >&2; exit 1; }
(cd "$WORK/board" && "$PY" -m device.listen $(cat "$WORK/inputs/listen_args") --jsonl "$WORK/listen_native.jsonl" \
    --embeddings "$WORK/listen_native.npy" 2>/dev/null)
"$PY" - "$WORK" <<'PYEOF'
import json, sys
import numpy as np
work = sys.argv[1]
emu = [json.loads(line) for line in open(f"{work}/listen.jsonl")]
native = [json.loads(line) for line in open(f"{work}/listen_native.jsonl")]
summary = emu[-1]
assert summary["event"] == "summary" and summary["status"] == "complete", summary
assert summary["source"]["resampled"] == "soxr-hq" and summary["frontend"]["frames_reused"] > 0, summary
windows, ref = [w for w in emu if "k" in w], [w for w in native if "k" in w]
assert len(windows) == len(ref) == summary["windows"] > 0, (len(windows), len(ref))
assert [w["top"][0][0] for w in windows] == [w["top"][0][0] for w in ref]
a, b = np.load(f"{work}/listen.npy"), np.load(f"{work}/listen_native.npy")
cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
assert cos.min() > 0.99, cos   # int8 kernels of aarch64 and x86_64 may round a requantization differently
print(f"test-arm64: OK: device.listen {summary['windows']} windows on aarch64, classes as native x86_64, "
      f"embedding cosine >= {cos.min():.4f}")
PYEOF
log "done in $(( $(date +%s) - start )) s (JSON: $WORK/result.json, $WORK/listen.jsonl)"
