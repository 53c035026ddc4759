#!/usr/bin/env bash
# GPU profile of the efficiency benchmark as one script for a GPU machine without network (aim: under 9 minutes).
#
# 1. On a machine with PyPI access, from the repository root, fetch what travels (into .gpu-vendor/, git-ignored):
#        bash recbole_mamba/bench/gpu_profile.sh --fetch
#    mamba-ssm and causal-conv1d as sdists (PyPI has no wheels), recbole and the packages the GPU image lacks as
#    Python 3.12 manylinux wheels.
# 2. On the GPU machine, from the repository root, with .gpu-vendor/ copied along:
#        bash recbole_mamba/bench/gpu_profile.sh [--skip-causal-conv1d] [--out DIR]
#    Builds both CUDA extensions for this GPU's architecture only (their setup.py lists nine), in parallel, into
#    /tmp/gpu-site, then runs `python -m recbole_mamba.bench.efficiency --profile gpu`. --skip-causal-conv1d saves
#    the longer build (~5 min on 16 cores): RecMamba's cuda backend then uses mamba-ssm's scan with PyTorch's conv.
set -euo pipefail
VENDOR=.gpu-vendor
SITE=/tmp/gpu-site
MAMBA_VERSION=2.3.2.post1
CONV_VERSION=1.7.0
WHEELS="recbole==1.2.1 colorlog==6.12.0 thop==0.1.1.post2209072238 texttable==1.7.2 plotly==7.1.0 narwhals==2.29.0"

if [ "${1:-}" = "--fetch" ]; then
    mkdir -p "$VENDOR"
    # the sdists themselves, checked against PyPI's sha256 (pip download would try to build their metadata: CUDA)
    python3 - "$VENDOR" "mamba-ssm==$MAMBA_VERSION" "causal-conv1d==$CONV_VERSION" <<'EOF'
import hashlib, json, sys, urllib.request
folder = sys.argv[1]
for requirement in sys.argv[2:]:
    name, version = requirement.split("==")
    project = json.load(urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=60))
    files = project.get("releases", {}).get(version) or (project["urls"] if project["info"]["version"] == version else [])
    sdist = next(f for f in files if f["packagetype"] == "sdist")
    data = urllib.request.urlopen(sdist["url"], timeout=300).read()
    assert hashlib.sha256(data).hexdigest() == sdist["digests"]["sha256"], f"{sdist['filename']}: sha256 mismatch"
    open(f"{folder}/{sdist['filename']}", "wb").write(data)
EOF
    # shellcheck disable=SC2086
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$VENDOR" $WHEELS
    ls -l "$VENDOR"
    exit 0
fi

SKIP_CONV=0
OUT_DIR=results
while [ $# -gt 0 ]; do
    case "$1" in
        --skip-causal-conv1d) SKIP_CONV=1 ;;
        --out) OUT_DIR="$2"; shift ;;
        *) echo "error: unknown option $1 (use --fetch, --skip-causal-conv1d, --out DIR)" >&2; exit 2 ;;
    esac
    shift
done
[ -d "$VENDOR" ] || { echo "error: $VENDOR/ missing: run this script with --fetch where PyPI is reachable" >&2; exit 2; }

mkdir -p "$SITE" /tmp/gpu-build
python3 -m pip install -q --no-index --no-deps --target "$SITE" "$VENDOR"/*.whl
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
ARCH=$(python3 -c "import torch; major, minor = torch.cuda.get_device_capability(); print(f'{major}{minor}')")
echo "building for sm_$ARCH with $(nproc) cores"

build() {  # build one sdist for sm_$ARCH only: drop the other -gencode pairs from its setup.py
    local sdist=$1 prefix=$2 log=$3
    tar -xzf "$sdist" -C /tmp/gpu-build
    local dir
    dir=/tmp/gpu-build/$(basename "$sdist" .tar.gz)
    python3 - "$dir/setup.py" "$ARCH" <<'EOF'
import re, sys
path, arch = sys.argv[1], sys.argv[2]
text = open(path).read()
pair = re.compile(r'cc_flag\.append\("-gencode"\)\n(\s*)cc_flag\.append\("arch=compute_(\d+)a?,code=sm_(\d+)a?"\)')
kept = pair.sub(lambda m: m.group(0) if m.group(3) == arch else "pass\n" + m.group(1) + "pass", text)
if f"sm_{arch}" not in kept:
    kept = kept.replace("cc_flag = []", f'cc_flag = ["-gencode", "arch=compute_{arch},code=sm_{arch}"]', 1)
open(path, "w").write(kept)
EOF
    env "${prefix}_FORCE_BUILD=TRUE" MAX_JOBS=$(( $(nproc) / 2 )) python3 -m pip install --no-index --no-deps \
        --no-build-isolation --target "$SITE" "$dir" >"$log" 2>&1
}

start=$SECONDS
build "$VENDOR/mamba_ssm-$MAMBA_VERSION.tar.gz" MAMBA /tmp/gpu-build/mamba.log &
mamba_pid=$!
if [ "$SKIP_CONV" = 0 ]; then
    build "$VENDOR/causal_conv1d-$CONV_VERSION.tar.gz" CAUSAL_CONV1D /tmp/gpu-build/conv.log &
    conv_pid=$!
    wait "$conv_pid" || { tail -20 /tmp/gpu-build/conv.log; echo "causal-conv1d build failed" >&2; }
fi
wait "$mamba_pid" || { tail -20 /tmp/gpu-build/mamba.log; echo "mamba-ssm build failed" >&2; }
echo "builds took $((SECONDS - start)) s"
python3 -c "import mamba_ssm.ops.selective_scan_interface as m; print('mamba-ssm kernels:', m.__file__)" \
    || echo "mamba-ssm does not import: RecMamba's cuda rows will show the error"
python3 -m recbole_mamba.bench.efficiency --profile gpu --out "$OUT_DIR"
