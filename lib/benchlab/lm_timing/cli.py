"""Seed-compatible commands of the CS336 benchmarking workflow.

    benchlab lm-timing run --model_size small --vocab 10000 --context_length 128 --d_model 768 \
        --d_ff 3072 --num_layers 12 --num_heads 12 --batch_size 4 --num_steps 1 \
        --num_warmups 5 --num_trials 10 [--forward_only] [--data_path tokens.npy] --output r.json
    benchlab lm-timing sweep --sizes small medium large xl 2_7B --contexts 128 256 512 1024 \
        --results-dir results     # results/bench_{model}_{context}.json, resumable
    benchlab lm-timing aggregate --results-dir results --output summary.md --csv results.csv

`run` times `num_trials` trials of `num_steps` steps after `num_warmups` warm-up steps (each
timed too: `warmup_times_ms` shows the first step's cost), measured as the bench's step cases
are (lm_timing.measure). Dimensions default to the --model_size's row (2_7B is 2.7B). A run is a
core.session.Run (`session`): its record (kind "step") is appended to store.jsonl beside the
output, whose seed JSON is a view of that record (`seed_json`), so `benchlab compare` and
`report` read it as they read the bench's. `sweep` runs each size x context in a fresh process.
"""

import argparse
import dataclasses
import json
from pathlib import Path

from benchlab.core.errors import BenchlabError, fail, read_json
from benchlab.core.options import bounded, output_file
from benchlab.core.stats import describe
from benchlab.core.store import atomic_path
from benchlab.core.timing import Timer, resolve_device

from . import CONFIGS, Sweep, measure, step_cases
from .aggregate import STORE, _row, load_results, write_summary
from .model import DIMS, SIZES, ModelConfig, canonical_size, num_params, step_flops

EXPERIMENT = "lm_timing"
SEED_FIELDS = ("model_size", "vocab", "context_length", "d_model", "d_ff", "num_layers",
               "num_heads", "batch_size", "num_steps", "num_warmups", "num_trials",
               "forward_only", "trial_times_ms", "mean_time_ms", "std_time_ms", "device")


COUNT = bounded(int, lo=1)


def _config(args):
    """(ModelConfig, the seed's config fields, mode) of a run's arguments."""
    base = SIZES.get(canonical_size(args.model_size))
    dims = {k: getattr(args, k) if getattr(args, k) is not None else getattr(base, k, None)
            for k in DIMS}
    for k, v in dims.items():
        if v is None:
            raise fail("--" + k, k, f"required when --model_size {args.model_size!r} is not one "
                       f"of {', '.join(SIZES)}")
    if dims["d_model"] % (2 * dims["num_heads"]):
        raise fail("lm-timing run", "--num_heads", f"{dims['num_heads']} heads must split d_model "
                   f"{dims['d_model']} into heads of even size (RoPE rotates pairs)")
    mode = args.mode or ("forward" if args.forward_only else "forward_backward")
    fields = {"model_size": args.model_size, "vocab": args.vocab,
              "context_length": args.context_length, **dims, "batch_size": args.batch_size,
              "num_steps": args.num_steps, "num_warmups": args.num_warmups,
              "num_trials": args.num_trials, "forward_only": mode == "forward", "mode": mode,
              "precision": args.precision, "attn": args.attn, "impl": args.impl,
              "compile": args.compile, "data_path": args.data_path}
    return ModelConfig(**dims, vocab_size=args.vocab), fields, mode


def session(args):
    """(the Run of one configuration, its step case, the record's other params). The Run's config
    is the tiny scale's with this configuration as its one step sweep, whose one step case (kind
    "step") is timed alone; dimensions, steps per trial, impl and data path are params. Its store
    is store.jsonl in the output's folder (a sweep's results dir)."""
    from benchlab.core.session import Run

    _, fields, mode = _config(args)
    sweep = Sweep((canonical_size(args.model_size),), (args.context_length,), modes=(mode,),
                  precisions=(args.precision,), attns=(args.attn,), compile=(args.compile,),
                  warmup=args.num_warmups, rounds=args.num_trials)
    config = dataclasses.replace(CONFIGS["tiny"], steps=(sweep,), pairs=(),
                                 batch=args.batch_size, vocab=args.vocab)
    run = Run(EXPERIMENT, "tiny", device=args.device, seed=args.seed, config=config,
              store=Path(args.output).parent / STORE)
    params = {"dims": {k: fields[k] for k in DIMS}, "num_steps": args.num_steps,
              "impl": args.impl, "data_path": args.data_path}
    return run, step_cases(config)[0], params


def save(args, metrics: dict) -> dict:
    """The record of this configuration's `metrics` (Run.record), appended to the store."""
    run, case, params = session(args)
    case_id = case.id + ("-peer" if args.impl == "peer" else "")
    return run.save(run.record("step", case, metrics, params=params, case_id=case_id))


def oom_metrics(args, reason: str) -> dict:
    """A configuration that did not fit: no times, but num_params and FLOPs (no model needed)."""
    cfg, _, mode = _config(args)
    return {"status": "oom", "reason": reason, "num_params": num_params(cfg),
            "flops": step_flops(cfg, args.batch_size, args.context_length, mode)}


def measure_args(args) -> dict:
    """The record's metrics of one configuration, measured as the bench module's step cases are
    (lm_timing.measure): per step (step_metrics), plus the seed's per-trial times."""
    cfg, _, mode = _config(args)
    tokens = None
    if args.data_path:
        from benchlab.zoo.data import read_npy

        tokens = read_npy(args.data_path)
    try:
        prep = measure.build(args.device, cfg, args.context_length, mode, args.precision,
                             impl=args.impl, attn=args.attn, batch=args.batch_size,
                             vocab=args.vocab, compile=args.compile, seed=args.seed,
                             tokens=tokens, tokens_source=args.data_path)
        timed = measure.time_steps(prep, Timer(None, args.device), warmups=args.num_warmups,
                                   trials=args.num_trials, steps=args.num_steps)
    except measure.OOM as e:
        return oom_metrics(args, str(e))
    trials = [1000 * t for t in timed["trials"]]
    trial = describe(trials)
    return {**measure.step_metrics(prep, timed), "loss": timed["loss"], "rounds_timed": len(trials),
            "per_trial_times_ms": trials, "mean_time_ms": trial["mean"],
            "std_time_ms": trial["std"] if len(trials) > 1 else 0.0}


def seed_json(args, record: dict) -> dict:
    """The seed's JSON of a run (its config fields and times per trial of num_steps steps) plus
    num_params, FLOPs, tokens/s, MFU and peak memory: a view of the record, nothing measured."""
    _, fields, _ = _config(args)
    m = record["metrics"]
    head = {**fields, "device": record["run"]["device"], "torch": record["machine"]["torch"],
            "status": m["status"]}
    if m["status"] != "ok":
        return {**head, "reason": m["reason"], "trial_times_ms": [], "mean_time_ms": None,
                "std_time_ms": None, "num_params": m["num_params"], "flops_per_step": m["flops"]}
    optional = {k: m[k] for k in ("peak_tflops", "mfu", "peak_memory_mb") if k in m}
    return {**head, "trial_times_ms": m["per_trial_times_ms"], "mean_time_ms": m["mean_time_ms"],
            "std_time_ms": m["std_time_ms"], "warmup_times_ms": m["warmup_times_ms"],
            "first_step_ms": m["first_step_ms"], "mean_step_time_ms": m["mean_ms"],
            "median_step_time_ms": m["median_ms"], "num_params": m["num_params"],
            "flops_per_step": m["flops"], "tokens_per_s": m["tokens_per_s"],
            "tflops": m["tflops"], **optional}


def write_json(path: Path, doc: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n")


def run(args) -> dict:
    """Measure one configuration, save its record in the store, and return the seed's JSON."""
    args.device = resolve_device(args.device)
    return seed_json(args, save(args, measure_args(args)))


def cmd_run(args) -> int:
    check_label(args.model_size, "--model_size")
    out = Path(args.output)
    if out.exists():
        raise fail(str(out), "--output", "already exists; results are never overwritten")
    result = run(args)
    write_json(out, result)
    shown = (f"{result['mean_time_ms']:.2f} +- {result['std_time_ms']:.2f} ms"
             if result["status"] == "ok" else result["reason"])
    print(f"{args.model_size} ctx {args.context_length} {result['mode']} {args.precision}: "
          f"{shown} -> {out} (record: {out.parent / STORE})")
    return 0


# -- aggregate and sweep -------------------------------------------------------------------

def cmd_aggregate(args) -> int:
    for target in (args.output, args.csv):
        if target and Path(target).exists() and not args.force:
            raise fail(str(target), "output", "already exists (pass --force to replace it)")
    write_summary(load_results(Path(args.results_dir)), args.output, args.csv)
    print(f"wrote {args.output}" + (f" and {args.csv}" if args.csv else ""))
    return 0


def check_label(label: str, option: str) -> None:
    """A size label names its result file (bench_{label}_{context}.json): no folders in it."""
    if not label or "/" in label or "\\" in label:
        raise fail("command line", option, f"{label!r}: a size label names the result file; "
                   "it may not be empty or contain '/' or '\\'")


def finished(path: Path, size: str, ctx: int) -> None:
    """Check that an existing result file is a finished run of (size, ctx) (aggregate's checks
    of its fields); a BenchlabError naming the file and field otherwise, never a skip."""
    try:
        row = _row(path, read_json(path))
        for field, want in (("model_size", size), ("context_length", ctx)):
            got = canonical_size(str(row[field])) if field == "model_size" else row[field]
            if got != want:
                raise fail(str(path), field, f"{row[field]!r}, not {want!r}")
    except BenchlabError as e:
        raise BenchlabError(f"{e} (not a finished result; move it away to rerun)") from None


def cmd_sweep(args, passthrough: list[str]) -> int:
    """The seed's sweep_local.sh: each size x context in a fresh process, one JSON each; files
    that exist are kept (resume) once they check as finished results (`finished`: a malformed
    one stops the sweep before it runs anything); a process killed for memory is recorded as
    OOM."""
    import subprocess
    import sys

    from tqdm import tqdm

    for label in args.sizes:
        check_label(label, "--sizes")
    out = Path(args.results_dir)
    grid = [(canonical_size(s), c) for s in args.sizes for c in args.contexts]
    paths = {(size, ctx): out / f"bench_{size.replace('.', '_')}_{ctx}.json"
             for size, ctx in grid}
    for (size, ctx), path in paths.items():
        if path.exists():
            finished(path, size, ctx)
    out.mkdir(parents=True, exist_ok=True)
    for size, ctx in (bar := tqdm(grid, desc="lm-timing sweep")):
        path = paths[size, ctx]
        bar.set_postfix_str(path.name)
        if path.exists():
            continue
        cmd = [sys.executable, "-m", "benchlab.cli", "lm-timing", "run", "--model_size", size,
               "--context_length", str(ctx), *passthrough, "--output", str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode in (-9, 137):  # SIGKILL: the kernel's OOM killer
            run_args = run_parser().parse_args(cmd[5:-2] + ["--output", str(path)])
            record = save(run_args, oom_metrics(run_args, "OOM (process killed by SIGKILL)"))
            write_json(path, seed_json(run_args, record))
        elif proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise fail(str(path), f"{size} ctx {ctx}", tail)
    print(f"{len(grid)} results in {out}")
    return 0


def run_options(r, grid: bool = False) -> None:
    """The options of `run`; a sweep takes sizes and contexts as lists instead."""
    if grid:
        r.add_argument("--sizes", nargs="+", required=True,
                       help=f"model sizes ({', '.join(SIZES)}; 2_7B = 2.7B)")
        r.add_argument("--contexts", nargs="+", type=COUNT, required=True)
    else:
        r.add_argument("--model_size", required=True,
                       help=f"label; known: {', '.join(SIZES)} (2_7B = 2.7B)")
        r.add_argument("--context_length", type=COUNT, required=True)
    r.add_argument("--vocab", type=COUNT, default=10_000, help="(default: %(default)s)")
    for k in DIMS:
        r.add_argument("--" + k, type=COUNT, default=None, help="(default: the size's value)")
    r.add_argument("--batch_size", type=COUNT, default=4, help="(default: %(default)s)")
    r.add_argument("--num_steps", type=COUNT, default=1, help="steps per trial (default: 1)")
    r.add_argument("--num_warmups", type=bounded(int, lo=0), default=5,
                   help="(default: %(default)s)")
    r.add_argument("--num_trials", type=COUNT, default=10, help="(default: %(default)s)")
    r.add_argument("--forward_only", action="store_true")
    r.add_argument("--mode", choices=("forward", "forward_backward", "train_step"), default=None,
                   help="overrides --forward_only; train_step adds an AdamW step")
    r.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="autocast dtype (default: %(default)s; fp16 only on CUDA)")
    r.add_argument("--attn", choices=("sdpa", "einsum"), default="sdpa")
    r.add_argument("--impl", choices=("ours", "peer"), default="ours",
                   help="ours, or peer = transformers LlamaForCausalLM (default: %(default)s)")
    r.add_argument("--compile", action="store_true", help="torch.compile the model")
    r.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="(default: %(default)s)")
    r.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    r.add_argument("--data_path", default=None, help=".npy token array (memory-mapped)")
    if not grid:
        r.add_argument("--output", required=True, help="JSON file to write (never overwritten)")


def run_parser() -> argparse.ArgumentParser:
    r = argparse.ArgumentParser(prog="benchlab lm-timing run")
    run_options(r)
    return r


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchlab lm-timing", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    run_options(sub.add_parser("run", help="time one configuration, write the seed's JSON"))
    w = sub.add_parser("sweep", help="sizes x contexts, one fresh process and JSON each "
                       "(results/bench_{model}_{context}.json), resumable")
    run_options(w, grid=True)
    w.add_argument("--results-dir", "--results_dir", dest="results_dir", default="results")
    a = sub.add_parser("aggregate", help="tables of a directory of run JSON files")
    a.add_argument("--results-dir", required=True)
    a.add_argument("--output", required=True, type=output_file, help="markdown summary")
    a.add_argument("--csv", default=None, type=output_file, help="CSV of the complete results")
    a.add_argument("--force", action="store_true", help="replace existing summary files")
    return p


SWEEP_ONLY = ("sizes", "contexts", "results_dir", "command")


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.command == "run":
        return cmd_run(args)
    if args.command == "sweep":
        defaults = vars(run_parser().parse_args(["--model_size", "x", "--context_length", "1",
                                                 "--output", "x"]))
        passthrough = []  # the options that differ from run's defaults, handed to each run
        for key, value in vars(args).items():
            if key in SWEEP_ONLY or value == defaults.get(key):
                continue
            flag = "--" + key
            passthrough += [flag] if value is True else [flag, str(value)]
        return cmd_sweep(args, passthrough)
    return cmd_aggregate(args)


__all__ = ["main", "run", "session", "measure_args", "seed_json", "oom_metrics", "canonical_size",
           "SEED_FIELDS", "BenchlabError"]
