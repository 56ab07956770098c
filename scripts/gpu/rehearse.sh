#!/usr/bin/env bash
# Rehearse scripts/gpu/run.sh on this machine's CPU before a GPU machine is at hand: the same
# steps on the packed bundles (gpu/a, gpu/b, ...), with --device cpu and tiny settings (batch 2,
# one measured iteration, training of one minute, FID of 64 generated images). It checks the
# steps' plumbing (staging, arguments, outputs, failures), not the figures. `graphs` fails here by
# design (--cuda-graphs needs CUDA: the refusal is what it checks).
#
#   scripts/gpu/rehearse.sh stage check official "train 1" "wait 300" fid
#
# Writes under $REHEARSE_DIR (default /tmp/fpgan-rehearse): the rewritten run.sh, the staged
# files (g/) and the outputs (out/). The official step needs a Python with torch, torchvision
# and requests (PYTHON=...); the default is the project's .venv, which has torch only.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
R=${REHEARSE_DIR:-/tmp/fpgan-rehearse}
[ $# -gt 0 ] || { echo "usage: scripts/gpu/rehearse.sh STEP ['STEP ARG'] ... (steps of run.sh)" >&2; exit 2; }
[ -d "$ROOT/gpu/a" ] || { echo "rehearse: no bundles in $ROOT/gpu: run scripts/gpu/pack.sh first" >&2; exit 1; }
mkdir -p "$R/scripts/gpu"
ln -sfn "$ROOT/gpu" "$R/gpu"
for py in targets.py pg_profile.py; do  # run.sh's steps call them
  ln -sfn "$ROOT/scripts/gpu/$py" "$R/scripts/gpu/$py"
done
sed -e 's/--device cuda/--device cpu/g' \
  -e 's/--batch 64/--batch 2/g' \
  -e 's/--iters 20 --warmup 5/--iters 1 --warmup 4/g' \
  -e 's/--iters 3 --warmup 3/--iters 1 --warmup 1/' \
  -e 's/--iters 2 --warmup 3/--iters 1 --warmup 1/' \
  -e 's/--metrics "\$metric" --device cpu/--metrics "$metric" --num-gen 64 --device cpu/' \
  -e 's/--kimg 0.768 --tick 0.256/--kimg 0.008 --tick 0.004/' \
  "$ROOT/scripts/gpu/run.sh" >"$R/scripts/gpu/run.sh"
chmod +x "$R/scripts/gpu/run.sh"
# every substitution must have matched: a run.sh that changed needs this script changed too
for gone in '--device cuda' '--batch 64' '--iters 20' '--iters 3 ' '--iters 2 ' '--kimg 0.768'; do
  if grep -q -- "$gone" "$R/scripts/gpu/run.sh"; then
    echo "rehearse: '$gone' is still in the rewritten run.sh: update scripts/gpu/rehearse.sh" >&2
    exit 1
  fi
done
grep -q -- '--num-gen 64' "$R/scripts/gpu/run.sh" \
  || { echo "rehearse: the fid step was not shortened: update scripts/gpu/rehearse.sh" >&2; exit 1; }
export FPGAN_GPU=$R/g OUT=$R/out
rm -rf "$OUT"  # a call's $OUT starts empty; the staged files in g/ stay, as on a warm machine
export FPGAN_TORCH_LIB=${FPGAN_TORCH_LIB:-$ROOT/.venv/libtorch/lib}
export PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
failed=0
for s in "$@"; do
  # shellcheck disable=SC2086 # "train 1" is a step with its argument
  "$R/scripts/gpu/run.sh" $s || { echo "rehearse: step '$s' failed" >&2; failed=1; }
done
echo "rehearse: outputs in $OUT" >&2
exit $failed
