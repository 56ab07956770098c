#!/usr/bin/env bash
# Run fpgan's GPU measurements on a machine without network, step by step, writing results under
# $OUT (default gpu-out/ in the repository root). Everything lives in $FPGAN_GPU (default
# /tmp/fpgan-gpu), which survives between calls while the machine stays up. Bundles come from scripts/gpu/pack.sh.
#
#   stage              copy the carried bundles (gpu/a, gpu/b, ...) in; assemble and check
#   check              CUDA vs CPU: losses and gradients of one G and D phase (TF32 off); the
#                      eager step against itself and against --cuda-graphs (deterministic kernels)
#   bench [SETTING...] fpgan bench, the 4 configurations at each SETTING in turn: fp32 (TF32
#                      off), tf32, bf16, bf16-cl (bf16 + channels_last), det (fp32 with
#                      --deterministic); default the first four
#   profile            faster and fastgan under libtorch's profiler (fp32, bf16+channels_last)
#                      and the official code's fastgan+DSC and fastgan (fp32): where the time
#                      goes, phase by phase against the official code (profile.txt), and the
#                      Chrome traces (traces.tar.gz)
#   graphs             faster and fastgan with --cuda-graphs (fp32, bf16+channels_last)
#   official           the official code (pg_bench.py) for fastgan and fastgan+DSC, fp32
#   targets            the bench, graphs and official results in $OUT against the targets
#                      (targets.md; scripts/gpu/targets.py, which also runs where they are copied)
#   train MINUTES      background: faster, then fastgan, each MINUTES of wall clock (SIGTERM)
#   wait SECONDS       wait for the background training (at most SECONDS), show its progress
#   fid [METRIC]       FID (default fid10k_full) and an 8x4 sample grid of each trained run
#   fid50k             the time of one fid50k_full evaluation of the faster run
#   dist               a data-parallel group of one on CUDA (NCCL, then Gloo) against no group:
#                      that the path works, and what its two all-reduces cost
#   all MINUTES        stage, check, bench, graphs, official, targets, train, wait, fid (one long sitting;
#                      a failed step is reported and the next ones still run)
set -euo pipefail
: "${1:?usage: scripts/gpu/run.sh stage|check|bench|profile|graphs|official|targets|train|wait|fid|fid50k|dist|all}"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
G=${FPGAN_GPU:-/tmp/fpgan-gpu}
OUT=${OUT:-$ROOT/gpu-out}
export FPGAN_GPU=$G OUT  # for the steps that "all" runs as processes of their own
mkdir -p "$G/home/weights" "$G/stage" "$OUT"
# torch's libraries first, whatever the machine's own LD_LIBRARY_PATH holds (CUDA images set one)
TORCH_LIB=${FPGAN_TORCH_LIB:-/opt/torch/.venv/lib/python3.12/site-packages/torch/lib}
export LD_LIBRARY_PATH=$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export FPGAN_HOME=$G/home
BIN=$G/fpgan
DATA=$G/pokemon256.zip
PY=${PYTHON:-python3}
log() { printf 'gpu: %s\n' "$*" >&2; }
need() { [ -e "$1" ] || { log "missing $1: carry the bundles and run 'stage' first"; exit 1; }; }

stage() {
  for b in "$ROOT"/gpu/[a-z]; do
    [ -d "$b" ] && cp -f "$b"/* "$G/stage/"
  done
  local s=$G/stage
  if [ -f "$s/fpgan.gz" ]; then unpack "$s/fpgan.gz" "$BIN" && chmod 755 "$BIN"; fi
  if [ -f "$s/efficientnet_lite0.safetensors.gz" ]; then
    unpack "$s/efficientnet_lite0.safetensors.gz" "$G/home/weights/efficientnet_lite0.safetensors"
  fi
  [ -f "$s/pg_bench.py" ] && cp -f "$s/pg_bench.py" "$G/"
  if [ -f "$s/pg.tar.gz" ] && [ ! -d "$G/pg" ]; then mkdir -p "$G/pg" && tar -xzf "$s/pg.tar.gz" -C "$G/pg"; fi
  if ls "$s"/timm-0.4.12-*.whl >/dev/null 2>&1 && [ ! -d "$G/site/timm" ]; then
    $PY -m pip install -q --no-index --no-deps --target "$G/site" "$s"/timm-0.4.12-*.whl
  fi
  # the dataset and the FID detector, each in parts across the bundles (PARTS: name and count);
  # a file is joined once all its parts are here, checked against SHA256SUMS, then unpacked
  if [ -f "$s/PARTS" ]; then
    while read -r name count; do
      join_parts "$name" "$count"
    done <"$s/PARTS"
  fi
  [ -f "$s/BUILD" ] && cp -f "$s/BUILD" "$G/BUILD"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >"$G/device.txt"
  fi
  python_check
  if [ -x "$BIN" ] && ldd "$BIN" | grep -q 'not found'; then
    ldd "$BIN" | grep 'not found' >&2
    log "the binary misses libraries: set FPGAN_TORCH_LIB to torch's lib folder on this machine"
  fi
  about >&2
  ls -la "$G" "$G/home/weights" >&2
}

# the official code under this machine's Python: dnnlib imports distutils' strtobool, which
# Python 3.12 no longer has (setuptools' shim gives it back); if it is missing, a stand-in
python_check() {
  [ -d "$G/site/timm" ] || return 0
  if ! PYTHONPATH=$G/site "$PY" -c 'from distutils.util import strtobool' 2>/dev/null; then
    mkdir -p "$G/site/distutils"
    : >"$G/site/distutils/__init__.py"
    printf '%s\n' 'def strtobool(v):' \
      '    v = v.lower()' \
      '    if v in ("y", "yes", "t", "true", "on", "1"): return 1' \
      '    if v in ("n", "no", "f", "false", "off", "0"): return 0' \
      '    raise ValueError("invalid truth value %r" % (v,))' >"$G/site/distutils/util.py"
    log "distutils.util missing: a stand-in for strtobool in $G/site"
  fi
  PYTHONPATH=$G/site "$PY" -c 'import timm, torchvision, distutils.util; print("python:", timm.__version__)' >&2 \
    || log "the official code's imports fail under $PY (the official and profile steps will too)"
}

# the GPU and the fpgan build the figures come from (a line each, for the top of a step's output)
about() {
  echo "device: $(cat "$G/device.txt" 2>/dev/null || echo unknown)"
  echo "fpgan build: $(cat "$G/BUILD" 2>/dev/null || echo unknown); $(date -u +%FT%TZ)"
}

# the gzip-compressed SRC to DEST, through DEST.tmp and a rename
unpack() { gunzip -c "$1" >"$2.tmp" && mv -f "$2.tmp" "$2"; }

# where a carried data file goes, unpacked (fid_inception_v3.pt.gz -> weights/fid_inception_v3.pt)
data_dest() {
  case $1 in fid_inception_v3.pt*) echo "$G/home/weights/${1%.gz}" ;; *) echo "$G/${1%.gz}" ;; esac
}

# join NAME's COUNT parts from the staging folder once all are here, check them against
# SHA256SUMS and unpack them; report how far it is
join_parts() {
  local name=$1 count=$2 s=$G/stage dest have want got
  dest=$(data_dest "$name")
  [ -f "$dest" ] && { log "$name complete"; return 0; }
  have=$(find "$s" -maxdepth 1 -name "$name.part-*" | wc -l)  # (ls fails on none: set -e)
  [ "$have" -eq "$count" ] || { log "$name not complete yet ($have of $count parts)"; return 0; }
  cat "$s/$name".part-* >"$G/joined-$name"
  want=$(awk -v n="$name" '$2 == n { print $1 }' "$s/SHA256SUMS")
  got=$(sha256sum "$G/joined-$name" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    log "$name: joined parts do not match SHA256SUMS (re-pack and carry again)"
  elif case $name in *.gz) unpack "$G/joined-$name" "$dest" ;; *) mv -f "$G/joined-$name" "$dest" ;; esac; then
    log "$name complete"
  else
    log "$name: cannot unpack the joined parts"
  fi
  rm -f "$G/joined-$name"
}

# run CMD..., its output appended to $OUT/TXT, stopped after LIMIT seconds (0: never); a failure
# is reported and the step goes on to its next command, failing at its end (`settle`)
FAILED=0
attempt() {
  local txt=$1 limit=$2; shift 2
  timeout -k 10 "$limit" "$@" | tee -a "$OUT/$txt" || { log "failed: $*"; FAILED=1; }
}
settle() { return "$FAILED"; }

check() {
  need "$BIN"
  about >"$OUT/check.txt"
  # bounded: the check is the first to capture a CUDA graph, and a hang must not cost the bench;
  # with its standard error, where libtorch names an operator without a deterministic kernel
  attempt check.txt 300 sh -c 'exec "$0" "$@" 2>&1' "$BIN" check --device cuda --res 256 --batch 4 \
    --json "$OUT/check.json"
  settle
}

# the fast-path flags of a bench setting
settings_flags() {
  case $1 in
    fp32) ;;
    tf32) echo --tf32 ;;
    bf16) echo --amp bf16 ;;
    bf16-cl) echo --amp bf16 --channels-last ;;
    det) echo --deterministic ;;
    *) log "unknown bench setting $1 (fp32, tf32, bf16, bf16-cl, det)"; return 1 ;;
  esac
}

bench() {  # bench [SETTING...]: the four configurations at each setting, in the order given
  need "$BIN"
  local b=("$BIN" bench --device cuda --res 256 --batch 64 --iters 20 --warmup 5) setting flags
  [ $# -gt 0 ] || set -- fp32 tf32 bf16 bf16-cl
  about >>"$OUT/bench.txt"
  for setting in "$@"; do
    flags=$(settings_flags "$setting") || { FAILED=1; continue; }
    # bounded (about 1.5 min estimated from FLOPs for fp32, less for the others): a hang must not cost the
    # next steps; the JSON keeps each configuration measured before the limit
    # shellcheck disable=SC2086 # the flags are words
    attempt bench.txt 360 "${b[@]}" $flags --json "$OUT/bench-gpu-$setting.json"
  done
  settle
}

profile() {
  need "$BIN"
  local b=("$BIN" bench --device cuda --res 256 --batch 64 --iters 3 --warmup 3 --cfgs faster,fastgan
    --profile "$G/prof") pr=$G/prof
  about >"$OUT/profile.txt"
  attempt profile.txt 240 "${b[@]}"
  # the official code's iteration under torch.profiler, phases labelled as fpgan's, then both
  # phase by phase (fpgan phases); not without the official code (gpu/a)
  if [ -d "$G/pg" ] && [ -d "$G/site/timm" ]; then
    local p=(env "PYTHONPATH=$G/site" "$PY" "$ROOT/scripts/gpu/pg_profile.py") cfg
    local q=("$G/pg_bench.py" --repo "$G/pg" --res 256 --batch 64 --iters 2 --warmup 3 --device cuda
      --json --cfg fastgan)
    # bounded (4 min each, about 1 expected): a hang must not cost the bf16 profile after it
    attempt profile.txt 240 "${p[@]}" "$pr/official-fastgan+dsc-fp32.trace.json" "${q[@]}" --dsc
    attempt profile.txt 240 "${p[@]}" "$pr/official-fastgan-fp32.trace.json" "${q[@]}"
    for cfg in faster:fastgan+dsc fastgan:fastgan; do
      echo "## fpgan ${cfg%%:*} against the official ${cfg#*:}, fp32" | tee -a "$OUT/profile.txt"
      attempt profile.txt 120 "$BIN" phases "fpgan=$pr/${cfg%%:*}-fp32.trace.json" \
        "official=$pr/official-${cfg#*:}-fp32.trace.json"
    done
  fi
  attempt profile.txt 240 "${b[@]}" --amp bf16 --channels-last
  pack_traces "$pr"
  settle
}

# the Chrome traces in folder $1 as $OUT/traces.tar.gz, under the 16 MiB a call returns: all of
# them, else the fp32 ones, else fpgan's fp32 ones (fast*), else faster's alone
pack_traces() {
  local set tgz
  tgz=$(realpath "$OUT")/traces.tar.gz
  for set in '*.trace.json' '*-fp32.trace.json' 'fast*-fp32.trace.json' 'faster-fp32.trace.json'; do
    # shellcheck disable=SC2086 # the set is a glob
    (cd "$1" && tar -czf "$tgz" -- $set) 2>/dev/null || continue
    [ "$(stat -c %s "$tgz")" -le $((15 << 20)) ] && { log "traces.tar.gz: $set"; ls -la "$tgz"; return 0; }
    log "traces.tar.gz with $set is over 15 MiB"
  done
  rm -f "$tgz"; log "no trace set fits in 15 MiB: the traces stay in $1"
}

graphs() {
  need "$BIN"
  local b=("$BIN" bench --device cuda --res 256 --batch 64 --iters 20 --warmup 5 --cfgs faster,fastgan
    --cuda-graphs)
  about >"$OUT/graphs.txt"
  # bounded (4 min each): a capture that hangs must not cost the profile after it
  attempt graphs.txt 240 "${b[@]}" --json "$OUT/bench-gpu-fp32-graphs.json"
  attempt graphs.txt 240 "${b[@]}" --amp bf16 --channels-last --json "$OUT/bench-gpu-bf16-cl-graphs.json"
  settle
}

official() {
  need "$G/pg"; need "$G/pg_bench.py"; need "$G/site/timm"
  local p=(env "PYTHONPATH=$G/site" "$PY" "$G/pg_bench.py" --repo "$G/pg" --res 256 --batch 64
    --iters 20 --warmup 5 --device cuda --json --cfg fastgan)
  : >"$OUT/official.jsonl"
  # fastgan+DSC first: three of the four targets against the official code are against it;
  # bounded (about 1 min each expected)
  attempt official.jsonl 240 "${p[@]}" --dsc
  attempt official.jsonl 240 "${p[@]}"
  settle
}

targets() {
  "$PY" "$ROOT/scripts/gpu/targets.py" "$OUT" | tee "$OUT/targets.md"
}

train() {
  local minutes=${1:?train MINUTES}
  need "$BIN"; need "$DATA"
  local cmd=""
  for cfg in faster fastgan; do
    cmd+="timeout -s TERM ${minutes}m '$BIN' train --data '$DATA' --cfg $cfg --batch 64 --seed 0 \
--kimg 100000 --snap 10 --metrics none --outdir '$G/runs' --desc budget${minutes}m \
>'$G/train-$cfg.log' 2>&1; "
  done
  setsid nohup bash -c "$cmd echo done >'$G/train.done'" >/dev/null 2>&1 &
  log "training in the background: faster, then fastgan, ${minutes} min each (logs in $G)"
}

dist() {
  need "$BIN"; need "$DATA"
  local args=(train --data "$DATA" --cfg faster --batch 64 --kimg 0.768 --tick 0.256 --snap 100
    --metrics none --device cuda)
  "$BIN" "${args[@]}" --outdir "$G/dist-none" 2>&1 | grep -E '^(tick|Done)' | tee "$OUT/dist.txt"
  for backend in nccl gloo; do
    echo "== group of one, $backend" | tee -a "$OUT/dist.txt"
    FPGAN_DIST_BACKEND=$backend RANK=0 LOCAL_RANK=0 WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 \
      MASTER_PORT=29555 "$BIN" "${args[@]}" --outdir "$G/dist-$backend" 2>&1 \
      | grep -E '^(tick|Done|error)' | tee -a "$OUT/dist.txt"
  done
}

wait_training() {
  local secs=${1:-540} t=0
  while [ ! -f "$G/train.done" ] && [ "$t" -lt "$secs" ]; do sleep 10; t=$((t + 10)); done
  for cfg in faster fastgan; do
    [ -f "$G/train-$cfg.log" ] && { echo "== $cfg"; grep -E '^(tick|Stopped|Done|Starting)' "$G/train-$cfg.log" | tail -n 4; }
  done
  [ -f "$G/train.done" ] && log "training finished" || log "training not finished (or not started)"
}

run_dir() { ls -d "$G/runs/"*-"$1"-*budget* 2>/dev/null | tail -n 1; }

fid() {
  local metric=${1:-fid10k_full}
  need "$G/home/weights/fid_inception_v3.pt"
  # a run still training would be scored at an early snapshot while sharing the GPU
  [ -f "$G/train.done" ] || { log "training not finished: run 'wait SECONDS' first"; return 1; }
  for cfg in faster fastgan; do
    fid_of "$cfg" "$metric" || log "fid of $cfg failed (the other run is still evaluated)"
  done
}

fid_of() {  # a function called in a || list runs without set -e: each failure returns
  local cfg=$1 metric=$2 dir; dir=$(run_dir "$cfg")
  [ -n "$dir" ] || { log "no run of $cfg"; return 1; }
  "$BIN" metrics --network "$dir" --data "$DATA" --metrics "$metric" --device cuda \
    | tee "$OUT/fid-$cfg.txt" || return 1
  "$BIN" generate --network "$dir" --seeds 0-31 --grid 8x4 --outdir "$G/samples-$cfg" \
    --device cuda || return 1
  cp "$G/samples-$cfg/grid.png" "$OUT/samples-$cfg.png" || return 1
  tail -n 3 "$dir/log.txt" >>"$OUT/fid-$cfg.txt"
}

# run the steps in turn, each in its own process (with set -e); a failed one is reported and
# the next ones still run
steps() {
  local failed=0
  for s in "$@"; do
    # shellcheck disable=SC2086 # "train 5" is a step with its argument
    "$ROOT/scripts/gpu/run.sh" $s || { log "step '$s' failed"; failed=1; }
  done
  return $failed
}

fid50k() {
  local dir; dir=$(run_dir faster)
  need "$dir"
  local t0=$SECONDS
  "$BIN" metrics --network "$dir" --data "$DATA" --metrics fid50k_full --device cuda >"$OUT/fid50k.txt" 2>&1
  echo "fid50k_full wall seconds (features of 50k generated images; real features cached): $((SECONDS - t0))" \
    | tee -a "$OUT/fid50k.txt"
}

main() {
  case $1 in
    stage) stage ;;
    check) check ;;
    bench) shift; bench "$@" ;;
    profile) profile ;;
    graphs) graphs ;;
    official) official ;;
    targets) targets ;;
    train) train "${2:-}" ;;
    wait) wait_training "${2:-540}" ;;
    fid) fid "${2:-}" ;;
    dist) dist ;;
    fid50k) fid50k ;;
    all)
      local m=${2:?all MINUTES}
      steps stage check bench graphs official targets "train $m" "wait $((2 * m * 60 + 120))" fid
      ;;
    *) log "unknown step $1"; exit 2 ;;
  esac
}

main "$@"
