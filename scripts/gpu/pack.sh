#!/usr/bin/env bash
# Pack what a GPU machine without network needs into bundles gpu/a, gpu/b, ... (git-ignored),
# each with the working tree under the 64 MiB a call may carry: the fpgan binary, the
# EfficientNet weights, the official Projected GAN code and a timm 0.4.12 wheel for the
# side-by-side (never committed) and the peer harness pg_bench.py in gpu/a; the Pokémon 256
# dataset, then the FID detector, cut into parts across the bundles.
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
# a call carries the working tree too: each bundle plus the tracked files must fit in 63 MiB
# (tracked files and the untracked ones git does not ignore: both travel)
tree=$(git -C "$ROOT" ls-files -z --cached --others --exclude-standard | (cd "$ROOT" && xargs -0 du -cb) \
  | tail -1 | cut -f1)
budget=$((62 * 1048576 - tree))
rm -rf "$G"/[a-z]
mkdir -p "$G/a"
# gzip-compressed where it pays (the binary 8.4 -> 3.2 MB, the FID detector 87 -> 81 MB) and the
# EfficientNet without its unused classifier head (19 -> 12 MB, 11 compressed): sitting 2 needs three
# bundles, not four. `stage` unpacks them.
gzip -9 -c "$ROOT/target/release/fpgan" >"$G/a/fpgan.gz"
# the commit the binary was built from (a "-dirty" one: with uncommitted changes), for the outputs
echo "$(git -C "$ROOT" describe --always --dirty) built $(date -u -r "$ROOT/target/release/fpgan" +%FT%TZ)" \
  >"$G/a/BUILD"
"$ROOT/.venv/bin/python" "$ROOT/scripts/convert_effnet.py" --trunk "$W/efficientnet-lite0.pth" \
  "$G/effnet-trunk.safetensors"
gzip -9 -c "$G/effnet-trunk.safetensors" >"$G/a/efficientnet_lite0.safetensors.gz"
rm -f "$G/effnet-trunk.safetensors"
cp "$SHARED/peers/pg_bench.py" "$G/a/"
if git -C "$PG" rev-parse --git-dir >/dev/null 2>&1; then
  git -C "$PG" archive --format=tar.gz HEAD >"$G/a/pg.tar.gz"
else
  tar -C "$PG" -czf "$G/a/pg.tar.gz" .
fi
"$ROOT/.venv/bin/python" -m pip download --quiet --no-deps --disable-pip-version-check \
  -d "$G/a" timm==0.4.12
# Pokémon 256 (compressed PNGs)
if [ ! -f "$G/pokemon256.zip" ]; then
  "$ROOT/fpgan" dataset --source "$SHARED/datasets/pokemon.zip" --dest "$G/pokemon256.zip" \
    --resolution 256 --compress
fi
if [ ! -f "$G/fid_inception_v3.pt.gz" ]; then
  gzip -9 -c "$W/fid_inception_v3.pt" >"$G/fid_inception_v3.pt.gz.tmp"
  mv -f "$G/fid_inception_v3.pt.gz.tmp" "$G/fid_inception_v3.pt.gz"
fi
# the sums of the files as carried (stage checks the joined parts before unpacking them)
sha256sum "$G/fid_inception_v3.pt.gz" "$G/pokemon256.zip" | sed "s#  .*/#  #" >"$G/a/SHA256SUMS"
# the dataset, then the FID detector, each cut into parts that fill bundle a's remaining room and
# then one bundle after another (b, c, ...); PARTS says how many parts each file has. The dataset
# comes first so that training can start as soon as its parts are staged.
bundle=a
room=$((budget - $(du -sb "$G/a" | cut -f1) - 65536))
[ "$room" -gt 0 ] || { log "bundle a alone is over the budget"; exit 1; }
: >"$G/a/PARTS"
for f in "$G/pokemon256.zip" "$G/fid_inception_v3.pt.gz"; do
  name=$(basename "$f") size=$(stat -c %s "$f") off=0 k=0
  while [ "$off" -lt "$size" ]; do
    if [ "$room" -le 0 ]; then
      bundle=$(echo "$bundle" | tr 'a-y' 'b-z')
      mkdir -p "$G/$bundle"
      room=$((budget - 65536))
    fi
    n=$((size - off < room ? size - off : room))
    dd if="$f" of="$G/$bundle/$name.part-$(printf %02d "$k")" bs=1M iflag=skip_bytes,count_bytes \
      skip="$off" count="$n" status=none
    off=$((off + n)) room=$((room - n)) k=$((k + 1))
  done
  echo "$name $k" >>"$G/a/PARTS"
done
for b in "$G"/[a-z]; do
  size=$(du -sb "$b" | cut -f1)
  log "gpu/$(basename "$b"): $((size / 1048576)) MiB + working tree $((tree / 1048576)) MiB ($(ls "$b" | tr '\n' ' '))"
  [ $((size + tree)) -le $((63 * 1048576)) ] || { log "gpu/$(basename "$b") and the working tree are over 63 MiB: too big for one call"; exit 1; }
done
log "carry $(cd "$G" && ls -d [a-z] | sed 's#^#gpu/#' | tr '\n' ' ')one per call; run scripts/gpu/run.sh stage in each"
