#!/usr/bin/env python3
"""pg_profile.py - the official training iteration (pg_bench.py) under torch.profiler, with its
phases labelled as fpgan labels its own, so that `fpgan phases` can set the two traces side by
side.

    python3 scripts/gpu/pg_profile.py TRACE.json PG_BENCH.py [pg_bench.py arguments...]

Runs pg_bench.py's run_one (its own harness, unchanged) with --iters as the profiled iterations:
the profiler starts at the first G phase after the warm-up and stops when the run ends, and the
Chrome trace is written to TRACE.json. The official loss already labels Gmain_forward,
Gmain_backward, Dgen_forward, Dgen_backward, Dreal_forward and Dreal_backward
(training/loss.py); this script adds Gboth_opt and Dmain_opt around each Adam step (the official
training loop's label also spans the gradients' flattening and nan_to_num, which pg_bench.py runs
just before the step, unlabelled). pg_bench.py's EMA update and data fetch stay unlabelled.
Needs what pg_bench.py needs (its header); nothing of the official code is copied or edited.
"""
import importlib.util
import os
import sys


def load_pg_bench(path):
    spec = importlib.util.spec_from_file_location("pg_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def label_adam_steps(torch):
    """Label each Adam step `<phase>_opt`: the first Adam made is G's (Gboth), the second D's
    (Dmain), as pg_bench.py makes them."""
    names = {}
    init, step = torch.optim.Adam.__init__, torch.optim.Adam.step

    def labelled_init(self, *a, **k):
        names[id(self)] = ["Gboth", "Dmain"][min(len(names), 1)]
        init(self, *a, **k)

    def labelled_step(self, *a, **k):
        with torch.autograd.profiler.record_function(names.get(id(self), "opt") + "_opt"):
            return step(self, *a, **k)

    torch.optim.Adam.__init__, torch.optim.Adam.step = labelled_init, labelled_step


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    trace, bench_path, rest = argv[1], argv[2], argv[3:]
    pg_bench = load_pg_bench(bench_path)
    args = pg_bench.parse_args(rest)
    if args.all:
        sys.exit("pg_profile.py profiles one variant: leave out --all")
    sys.path.insert(0, os.path.abspath(args.repo))
    import torch
    from torch.profiler import ProfilerActivity, profile
    from training.loss import ProjectedGANLoss

    label_adam_steps(torch)
    activities = [ProfilerActivity.CPU]
    if args.device == "cuda":
        activities.append(ProfilerActivity.CUDA)
    prof = profile(activities=activities)
    chunks = args.batch // args.batch_gpu  # parse_args sets batch_gpu (default: batch)
    start_at = args.warmup * chunks  # the first chunk of the first profiled G phase
    seen = {"Gboth": 0}
    accumulate = ProjectedGANLoss.accumulate_gradients

    def counted(self, phase, *a, **k):
        if phase == "Gboth":
            if seen["Gboth"] == start_at:
                if args.device == "cuda":
                    torch.cuda.synchronize()
                prof.start()
            seen["Gboth"] += 1
        return accumulate(self, phase, *a, **k)

    ProjectedGANLoss.accumulate_gradients = counted
    rc = pg_bench.run_one(args)
    if seen["Gboth"] <= start_at:
        sys.exit("pg_profile.py: the run ended before the profiled iterations")
    if args.device == "cuda":
        torch.cuda.synchronize()
    prof.stop()
    prof.export_chrome_trace(trace)
    print(f"pg_profile.py: {args.iters} iterations traced to {trace}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
