#!/usr/bin/env bash
# The GPU check of issue 27 in one call of at most 8 minutes (bench/gpu_check.py says what it
# measures). JSON goes to $OUT/gpu_check.json when $OUT is set, else bench/gpu_check.json, and
# is rewritten after every step, so a run cut short still leaves what it measured.
#
#   bash bench/gpu_check.sh --prepare   # here, before a device call: copy NUAA-SIRST and the
#                                       # small wheels the GPU image lacks into .gpucheck/
#   bash bench/gpu_check.sh             # on the GPU machine (device run: carry .gpucheck)
#   bash bench/gpu_check.sh --dry-run --out /tmp/gpu_check.json   # CPU, tiny sizes
#
# Python: $GGLOPS_PYTHON, else .venv/bin/python, else python3: the first whose torch sees a
# GPU (--dry-run: the first that imports torch). Without a GPU it prints one line and exits 2.
# NUAA-SIRST: $NUAA_SOURCE, else ../shared/datasets/nuaa-sirst, else .gpucheck/nuaa-sirst.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
CARRY="$ROOT/.gpucheck"
# The GPU image (torch, numpy, onnx, onnxruntime, PIL, scipy, yaml, typer, rich) lacks these;
# versions from requirements.lock. Ray and MLflow (~100 MB of wheels) do not fit a call's
# 64 MiB: where they are absent, the ray_gpu step checks DDP over NCCL without Ray.
WHEELS="pydantic pydantic-core annotated-types typing-inspection pydantic-settings python-dotenv"

prepare() {
    mkdir -p "$CARRY/wheels"
    local exclude
    exclude=$(git rev-parse --git-path info/exclude 2>/dev/null || echo .git/info/exclude)
    if ! grep -qx '/.gpucheck/' "$exclude" 2>/dev/null; then
        mkdir -p "$(dirname "$exclude")"
        echo '/.gpucheck/' >>"$exclude"  # a local ignore: carried, never committed
    fi
    local source=${NUAA_SOURCE:-$ROOT/../shared/datasets/nuaa-sirst}
    if [ -d "$source/idx_427" ]; then
        rm -rf "$CARRY/nuaa-sirst" && cp -r "$source" "$CARRY/nuaa-sirst"
    else
        echo "gpu_check: no NUAA-SIRST at $source (set NUAA_SOURCE); step pal will skip" >&2
    fi
    local pins=()
    for name in $WHEELS; do
        pins+=("$(grep -i "^${name}==" requirements.lock || echo "$name")")
    done
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$CARRY/wheels" "${pins[@]}" || exit 1
    du -sh "$CARRY"
    echo "gpu_check: prepared $CARRY; device run: command 'bash bench/gpu_check.sh', carry [.gpucheck]"
}

if [ "${1:-}" = "--prepare" ]; then
    prepare
    exit $?
fi

dry=0
for arg in "$@"; do [ "$arg" = "--dry-run" ] && dry=1; done
# The whole call (gpu_check.py keeps 20 s inside it); a CPU dry run compiles slowly.
if [ "$dry" = 1 ]; then LIMIT_S=${GPU_CHECK_LIMIT_S:-3600}; else LIMIT_S=${GPU_CHECK_LIMIT_S:-480}; fi

# The interpreter: the first candidate whose torch sees CUDA; --dry-run takes any torch.
python=""
fallback=""
for candidate in "${GGLOPS_PYTHON:-}" "$ROOT/.venv/bin/python" python3; do
    [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 || continue
    "$candidate" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)' \
        >/dev/null 2>&1
    case $? in
        0) python=$candidate; break ;;
        3) fallback=${fallback:-$candidate} ;;
    esac
done
if [ -z "$python" ]; then
    if [ "$dry" = 1 ] && [ -n "$fallback" ]; then
        python=$fallback
    elif [ -n "$fallback" ]; then
        echo "gpu_check: needs a CUDA GPU (torch.cuda.is_available() is false)"
        exit 2
    else
        echo "gpu_check: needs a CUDA GPU and a python with torch (\$GGLOPS_PYTHON, .venv, python3)"
        exit 2
    fi
fi

# Carried wheels for what this interpreter lacks (pydantic for gglops.core.params, ...).
site=""
if ls "$CARRY"/wheels/*.whl >/dev/null 2>&1 && ! "$python" -c 'import pydantic' 2>/dev/null; then
    site=$(mktemp -d /tmp/gpu_check_site.XXXXXX)
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target "$site" "$CARRY"/wheels/*.whl || echo "gpu_check: wheel install failed" >&2
fi
export PYTHONPATH="$ROOT:$ROOT/platform:$ROOT/models${site:+:$site}${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${NUAA_SOURCE:-}" ]; then
    for dir in "$ROOT/../shared/datasets/nuaa-sirst" "$CARRY/nuaa-sirst"; do
        if [ -d "$dir/idx_427" ]; then export NUAA_SOURCE=$dir; break; fi
    done
fi
export PYTHONUNBUFFERED=1

timeout -k 10 "$LIMIT_S" "$python" -m bench.gpu_check --deadline "$((LIMIT_S - 20))" "$@"
rc=$?
[ -n "$site" ] && rm -rf "$site"
exit $rc
