#!/usr/bin/env bash
# Pack what a GPU machine without network needs into gpu/a, gpu/b, gpu/c (git-ignored), each
# under the 64 MiB a call may carry: the fpgan binary, the EfficientNet weights, the FID detector
# and the Pokémon 256 dataset (both split across the bundles), the official Projected GAN code and
# a timm 0.4.12 wheel for the side-by-side (never committed), and the peer harness pg_bench.py.
#
#   scripts/gpu/pack.sh PG_SOURCE
#
# PG_SOURCE: a work tree or a git repository (bare or not) of autonomousvision/projected-gan.
# Then, on the GPU machine, `scripts/gpu/run.sh stage` after each call that carries a bundle.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PG=${1:?usage: scripts/gpu/pack.sh PG_SOURCE (work tree or git repo of autonomousvision/projected-gan)}
SHARED=${SHARED:-$ROOT/../shared}
FPGAN_HOME=${FPGAN_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/fpgan}
W=$FPGAN_HOME/weights
G=$ROOT/gpu
log() { printf 'pack: %s\n' "$*" >&2; }

make -C "$ROOT" build >/dev/null
rm -rf "$G/a" "$G/b" "$G/c"
mkdir -p "$G/a" "$G/b" "$G/c"
cp "$ROOT/target/release/fpgan" "$G/a/fpgan"
cp "$W/efficientnet_lite0.safetensors" "$G/a/"
cp "$SHARED/peers/pg_bench.py" "$G/a/"
if git -C "$PG" rev-parse --git-dir >/dev/null 2>&1; then
  git -C "$PG" archive --format=tar.gz HEAD >"$G/a/pg.tar.gz"
else
  tar -C "$PG" -czf "$G/a/pg.tar.gz" .
fi
"$ROOT/.venv/bin/python" -m pip download --quiet --no-deps --disable-pip-version-check \
  -d "$G/a" timm==0.4.12
# the FID detector (87 MB) in three parts, one per bundle; a smaller first part, since bundle a
# also carries the binary and the EfficientNet weights
fid=$W/fid_inception_v3.pt
size=$(stat -c %s "$fid")
first=$((24 * 1048576))
second=$(((size - first + 1) / 2))
part() { dd if="$fid" of="$G/fid.part-$1" iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none; }
part 00 0 "$first"
part 01 "$first" "$second"
part 02 $((first + second)) "$size"
mv "$G/fid.part-00" "$G/a/"; mv "$G/fid.part-01" "$G/b/"; mv "$G/fid.part-02" "$G/c/"
# Pokémon 256 (compressed PNGs) in two parts
if [ ! -f "$G/pokemon256.zip" ]; then
  "$ROOT/fpgan" dataset --source "$SHARED/datasets/pokemon.zip" --dest "$G/pokemon256.zip" \
    --resolution 256 --compress
fi
split -n 2 -d "$G/pokemon256.zip" "$G/pokemon.part-"
mv "$G/pokemon.part-00" "$G/b/"; mv "$G/pokemon.part-01" "$G/c/"
sha256sum "$W/fid_inception_v3.pt" "$G/pokemon256.zip" | sed "s#  .*/#  #" >"$G/a/SHA256SUMS"
# a call carries the working tree too: each bundle plus the tracked files must fit in 64 MiB
tree=$(git -C "$ROOT" ls-files -z | (cd "$ROOT" && xargs -0 du -cb) | tail -1 | cut -f1)
for b in a b c; do
  size=$(du -sb "$G/$b" | cut -f1)
  log "gpu/$b: $((size / 1048576)) MiB + working tree $((tree / 1048576)) MiB ($(ls "$G/$b" | tr '\n' ' '))"
  [ $((size + tree)) -le $((63 * 1048576)) ] || { log "gpu/$b and the working tree are over 63 MiB: too big for one call"; exit 1; }
done
log "carry gpu/a, then gpu/b, then gpu/c (one per call); run scripts/gpu/run.sh stage in each"
