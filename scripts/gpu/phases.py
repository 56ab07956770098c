#!/usr/bin/env python3
"""phases.py - Chrome traces of training iterations, phase by phase, side by side.

    python3 scripts/gpu/phases.py [--top N] NAME=TRACE.json [NAME=TRACE.json ...]

Each TRACE is a libtorch/Kineto Chrome trace with the phases labelled by the official loop's
names (Gmain_forward, Gmain_backward, Gboth_opt, Dgen_forward, Dgen_backward, Dreal_forward,
Dreal_backward, Dmain_opt, Gema): `fpgan bench --profile` writes such traces, and
scripts/gpu/pg_profile.py the official code's. An operator belongs to the labelled span (of any
thread) in which it starts, a CUDA kernel to the span in which it was launched; the rest is
"other". Per phase and iteration (iterations: the number of Gboth_opt spans) it prints the wall
time of the labelled spans, the operators' own time (less that of the operators they call), the
operator calls, and on CUDA the GPU time (kernels, copies and fills) and the kernels launched;
then, per phase, the N operators (on CUDA kernels, copies and fills) whose time differs most
between the first two traces. Standard library only.
"""
import collections
import json
import sys

GPU_WORK = ("kernel", "gpu_memcpy", "gpu_memset")
LABELS = ["Gmain_forward", "Gmain_backward", "Gboth_opt", "Dgen_forward", "Dgen_backward",
          "Dreal_forward", "Dreal_backward", "Dmain_opt", "Gema"]


def self_times(spans):
    """Each span's own time: its duration less that of the spans nested in it on its thread."""
    order = sorted(range(len(spans)), key=lambda i: (str(spans[i].get("tid")), spans[i]["ts"],
                                                      -spans[i].get("dur", 0)))
    own = [s.get("dur", 0) for s in spans]
    stack = []
    for i in order:
        s = spans[i]
        while stack:
            t = spans[stack[-1]]
            if t.get("tid") != s.get("tid") or t["ts"] + t.get("dur", 0) <= s["ts"]:
                stack.pop()
            else:
                break
        if stack:
            own[stack[-1]] -= s.get("dur", 0)
        stack.append(i)
    return own


class Phases:
    """One trace's time, phase by phase."""

    def __init__(self, path):
        with open(path) as f:
            events = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
        marks = sorted(((e["ts"], e["ts"] + e.get("dur", 0), e["name"]) for e in events
                        if e.get("cat") == "user_annotation" and e["name"] in LABELS))
        self.iterations = max(1, sum(1 for m in marks if m[2] == "Gboth_opt"))
        self.wall = collections.Counter()
        for a, b, name in marks:
            self.wall[name] += (b - a) / 1e3

        def label(ts):
            for a, b, name in marks:  # few spans per iteration: a scan is enough
                if a <= ts < b:
                    return name
            return "other"

        ops = [e for e in events if e.get("cat") == "cpu_op"]
        self.op_ms = collections.defaultdict(collections.Counter)
        self.op_calls = collections.Counter()
        for e, us in zip(ops, self_times(ops)):
            at = label(e["ts"])
            self.op_ms[at][e["name"]] += us / 1e3
            self.op_calls[at] += 1
        # launches through the runtime or the driver API (cuDNN's kernels come through the driver)
        launches = {e.get("args", {}).get("correlation"): e["ts"] for e in events
                    if e.get("cat") in ("cuda_runtime", "cuda_driver")}
        self.kernel_ms = collections.defaultdict(collections.Counter)
        self.kernels = collections.Counter()
        for e in events:
            if e.get("cat") not in GPU_WORK:
                continue
            at = label(launches.get(e.get("args", {}).get("correlation"), -1.0))
            self.kernel_ms[at][e["name"]] += e.get("dur", 0) / 1e3
            self.kernels[at] += e.get("cat") == "kernel"
        self.cuda = any(self.kernels.values())

    def per_iter(self, value):
        return value / self.iterations

    def heavy(self, phase):
        """Operator (or on CUDA kernel) name -> ms per iteration in `phase`."""
        table = self.kernel_ms if self.cuda else self.op_ms
        return {k: self.per_iter(v) for k, v in table[phase].items()}


def fmt(x):
    return f"{x:.1f}"


def count(x):
    """A count per iteration: whole where it is, else to one decimal."""
    return f"{x:.0f}" if x == int(x) else f"{x:.1f}"


def summary(named, phases):
    cols = ["phase"] + [f"{n} {what}" for n in named for what in
                        ["wall ms", "op ms", "ops"] + (["GPU ms", "kernels"] if phases[n].cuda else [])]
    lines = ["| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
    for phase in LABELS + ["other"]:
        row = []
        for n in named:
            p = phases[n]
            row += [fmt(p.per_iter(p.wall[phase])) if phase != "other" else "",
                    fmt(p.per_iter(sum(p.op_ms[phase].values()))),
                    count(p.per_iter(p.op_calls[phase]))]
            if p.cuda:
                row += [fmt(p.per_iter(sum(p.kernel_ms[phase].values()))),
                        count(p.per_iter(p.kernels[phase]))]
        lines.append(f"| {phase} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def differences(named, phases, top):
    a, b = named[0], named[1]
    what = "kernel" if phases[a].cuda else "operator (own time)"
    out = [f"\nThe {top} largest differences per phase, {a} less {b}, ms per iteration ({what}):"]
    for phase in LABELS + ["other"]:
        ha, hb = phases[a].heavy(phase), phases[b].heavy(phase)
        names = sorted(set(ha) | set(hb), key=lambda k: -abs(ha.get(k, 0) - hb.get(k, 0)))[:top]
        if not names:
            continue
        out.append(f"\n{phase}:")
        out += [f"  {ha.get(k, 0):9.2f} {hb.get(k, 0):9.2f} {ha.get(k, 0) - hb.get(k, 0):+9.2f}  {k[:90]}"
                for k in names]
    return "\n".join(out)


def main(argv):
    top, args = 8, list(argv[1:])
    if args[:1] == ["--top"]:
        top, args = int(args[1]), args[2:]
    if not args or any("=" not in a for a in args):
        sys.exit(__doc__)
    named, phases = [], {}
    for a in args:
        name, path = a.split("=", 1)
        try:
            phases[name] = Phases(path)
        except (OSError, ValueError, KeyError) as e:
            sys.exit(f"phases.py: cannot read the trace {path}: {e} (a Chrome trace from "
                     "fpgan bench --profile or pg_profile.py)")
        named.append(name)
    print("Per iteration: " + ", ".join(f"{n} {phases[n].iterations} iterations" for n in named))
    print(summary(named, phases))
    if len(named) > 1:
        print(differences(named, phases, top))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
