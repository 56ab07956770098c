#!/usr/bin/env python3
"""targets.py - the GPU results of scripts/gpu/run.sh against the targets, as Markdown tables.

    python3 scripts/gpu/targets.py DIR

DIR holds what the `bench`, `graphs` and `official` steps wrote: bench-gpu-*.json (fpgan bench
--json) and official.jsonl (pg_bench.py --json, one line per variant); either may be missing.
Prints every measured row side by side, then the targets of Faster Projected GAN and of fpgan
against the official code, each with its measured ratio and whether it is met. Standard library
only. Exit status 0 whether or not targets are met; 1 when DIR holds no results.
"""
import glob
import json
import os
import sys

GIB = 2**30


def settings(spec):
    """The fast-path settings of a bench row in words, as fpgan's tables write them."""
    words = "bf16 autocast" if spec.get("amp") == "bf16" else "fp32"
    words += ", TF32" if spec.get("tf32") else " (TF32 off)"
    if spec.get("channels_last"):
        words += ", channels_last"
    if spec.get("cuda_graphs"):
        words += ", CUDA graphs"
    if spec.get("deterministic"):
        words += ", deterministic"
    return words


def fpgan_rows(folder):
    """Rows of every bench JSON in `folder` (name order)."""
    rows = []
    for path in sorted(glob.glob(os.path.join(folder, "bench-gpu-*.json"))):
        with open(path) as f:
            for r in json.load(f):
                spec = r["spec"]
                rows.append(dict(
                    code="fpgan", cfg=spec["cfg"], settings=settings(spec),
                    fp32=spec.get("amp") == "none" and not any(
                        spec.get(k) for k in ("tf32", "channels_last", "cuda_graphs")),
                    det=bool(spec.get("deterministic")),
                    batch=spec["batch"], res=spec["res"], device=r["device"],
                    img_s=r["images_per_sec"], sec_iter=r["median"],
                    alloc=r.get("peak_gpu_allocated_gb"),
                    alloc_warm=r.get("peak_gpu_allocated_with_warmup_gb"),
                    reserved=r.get("peak_gpu_reserved_gb"), rss=r.get("peak_rss_gb"),
                    file=os.path.basename(path)))
    return rows


def official_rows(folder):
    """Rows of official.jsonl in `folder` (pg_bench.py: fp32, TF32 off); lines that are not
    JSON (warnings) are skipped."""
    path = os.path.join(folder, "official.jsonl")
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if not isinstance(r, dict) or "variant" not in r:
                continue
            mib = r.get("cuda_max_memory_allocated_mib")
            reserved = r.get("cuda_max_memory_reserved_mib")
            rows.append(dict(
                code="official", cfg=r["variant"], settings="fp32 (TF32 off)", fp32=True,
                det=False,
                batch=r["batch"], res=r["res"], device=r.get("cuda_device", r.get("device")),
                img_s=r["images_per_s"], sec_iter=r["median_s_per_iter"],
                alloc=None, alloc_warm=None if mib is None else mib * 2**20 / GIB,
                reserved=None if reserved is None else reserved * 2**20 / GIB,
                rss=r.get("peak_rss_mib", 0) * 2**20 / GIB or None, file="official.jsonl"))
    return rows


def fmt(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def table(rows):
    out = ["| code | cfg | settings | device | res | batch | img/s | sec/iter | peak alloc GB "
           "| peak alloc GB incl. warm-up | peak reserved GB | peak RSS GB | file |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['code']} | {r['cfg']} | {r['settings']} | {r['device']} | {r['res']} "
                   f"| {r['batch']} "
                   f"| {fmt(r['img_s'])} | {fmt(r['sec_iter'], 3)} | {fmt(r['alloc'])} "
                   f"| {fmt(r['alloc_warm'])} | {fmt(r['reserved'])} | {fmt(r['rss'])} "
                   f"| {r['file']} |")
    return "\n".join(out)


def pick(rows, code, cfg, fp32_only=True):
    """The fastest row of `code`'s `cfg` (if `fp32_only`, among the rows of the reference's
    settings: fp32 with TF32 off, eager, NCHW); never one with deterministic kernels, which
    trade speed for reproducibility (shown in the table, judged by no target)."""
    found = [r for r in rows if r["code"] == code and r["cfg"] == cfg and not r["det"]
             and (r["fp32"] or not fp32_only)]
    return max(found, key=lambda r: r["img_s"], default=None)


def targets(rows):
    """(target, measured ratio or None, verdict, what was compared) for each target."""
    f32 = pick(rows, "fpgan", "faster")
    g32 = pick(rows, "fpgan", "fastgan")
    best = pick(rows, "fpgan", "faster", fp32_only=False)
    dsc = pick(rows, "official", "fastgan+dsc")
    ofg = pick(rows, "official", "fastgan")

    def ratio(a, b, key):
        return None if a is None or b is None or not a[key] or not b[key] else a[key] / b[key]

    def row(name, value, at_least, bound, a, b):
        """A target (`bound` a number) or a figure shown for comparison (`bound` None)."""
        if a is None or b is None or value is None:
            verdict = "not measured"
        elif (a["res"], a["batch"]) != (b["res"], b["batch"]):
            value, verdict = None, "not comparable (other resolution or batch)"
        elif bound is None:
            verdict = "-"
        else:
            verdict = "yes" if (value >= bound if at_least else value <= bound) else "**no**"
        what = " / ".join(
            "-" if r is None else f"{r['code']} {r['cfg']} {r['settings']} "
            f"({r['res']} px, batch {r['batch']})" for r in (a, b))
        return name, value, verdict, what

    return [
        row("faster / fastgan images/s, fp32 (paper: >= 1.20x)",
            ratio(f32, g32, "img_s"), True, 1.20, f32, g32),
        row("faster / fastgan peak allocated memory, fp32 (paper: <= 0.85x)",
            ratio(f32, g32, "alloc"), False, 0.85, f32, g32),
        row("fpgan faster fp32 / official fastgan+DSC fp32, images/s (>= 1.0x)",
            ratio(f32, dsc, "img_s"), True, 1.0, f32, dsc),
        row("fpgan faster best fast path / official fastgan+DSC fp32, images/s (>= 2x)",
            ratio(best, dsc, "img_s"), True, 2.0, best, dsc),
        row("fpgan faster best fast path / official fastgan fp32, images/s (>= 3x)",
            ratio(best, ofg, "img_s"), True, 3.0, best, ofg),
        row("fpgan faster / official fastgan+DSC peak allocated incl. warm-up, fp32 (no target)",
            ratio(f32, dsc, "alloc_warm"), False, None, f32, dsc),
    ]


def target_table(rows):
    out = ["| target | measured | met | compared |", "|---|---|---|---|"]
    for name, value, verdict, what in targets(rows):
        out.append(f"| {name} | {fmt(value, 3)}{'' if value is None else 'x'} | {verdict} "
                   f"| {what} |")
    return "\n".join(out)


def main(argv):
    if len(argv) != 2 or argv[1].startswith("-"):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    folder = argv[1]
    rows = fpgan_rows(folder) + official_rows(folder)
    if not rows:
        print(f"targets.py: no bench-gpu-*.json or official.jsonl results in {folder}: "
              "run scripts/gpu/run.sh bench and official first", file=sys.stderr)
        return 1
    print(table(rows))
    print()
    print(target_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
