"""Seed-compatible commands of the CS336 benchmarking workflow.

    benchlab lm-timing run --model_size small --vocab 10000 --context_length 128 --d_model 768 \
        --d_ff 3072 --num_layers 12 --num_heads 12 --batch_size 4 --num_steps 1 \
        --num_warmups 5 --num_trials 10 [--forward_only] [--data_path tokens.npy] --output r.json
    benchlab lm-timing aggregate --results-dir results --output summary.md --csv results.csv

`run` times `num_trials` trials of `num_steps` steps each after `num_warmups` warm-up steps (each
warm-up step is timed too, in `warmup_times_ms`, so the first step's cost is visible) and writes
the seed's JSON fields plus num_params, FLOPs, tokens/s, MFU and peak memory. Model dimensions
default to the --model_size's row when it names a known size.
"""

import argparse
import json
import math
from pathlib import Path

from benchlab.core.errors import BenchlabError, fail, read_json

from .model import SIZES

SEED_FIELDS = ("model_size", "vocab", "context_length", "d_model", "d_ff", "num_layers",
               "num_heads", "batch_size", "num_steps", "num_warmups", "num_trials",
               "forward_only", "trial_times_ms", "mean_time_ms", "std_time_ms", "device")
SIZE_ORDER = {name: i for i, name in enumerate(SIZES)}


def run(args) -> dict:
    import torch

    from benchlab.core.timing import resolve_device, time_fn

    from . import run as R
    from .model import ModelConfig

    device = resolve_device(args.device)
    base = SIZES.get(args.model_size)
    dims = {k: getattr(args, k) if getattr(args, k) is not None else getattr(base, k, None)
            for k in ("d_model", "d_ff", "num_layers", "num_heads")}
    for k, v in dims.items():
        if v is None:
            raise fail("--" + k, k, f"required when --model_size {args.model_size!r} is not one "
                       f"of {', '.join(SIZES)}")
    cfg = ModelConfig(**dims, vocab_size=args.vocab)
    mode = args.mode or ("forward" if args.forward_only else "forward_backward")
    tokens = None
    if args.data_path:
        from benchlab.zoo.data import read_npy

        tokens = read_npy(args.data_path)
    out = {"model_size": args.model_size, "vocab": args.vocab,
           "context_length": args.context_length, **dims, "batch_size": args.batch_size,
           "num_steps": args.num_steps, "num_warmups": args.num_warmups,
           "num_trials": args.num_trials, "forward_only": mode == "forward", "mode": mode,
           "precision": args.precision, "attn": args.attn, "impl": args.impl,
           "compile": args.compile, "data_path": args.data_path, "device": device,
           "torch": torch.__version__}
    reason = R.oom_reason(cfg, args.context_length, mode, args.precision, device=device,
                          attn=args.attn, batch=args.batch_size, vocab=args.vocab)
    try:
        if reason is None:
            prep = R.prepare(cfg, args.context_length, mode, args.precision, device=device,
                             impl=args.impl, attn=args.attn, batch=args.batch_size,
                             vocab=args.vocab, compile=args.compile, seed=args.seed,
                             tokens=tokens)

            def trial():
                for _ in range(args.num_steps):
                    prep.step()

            warm = [time_fn(prep.step, device, warmup=0, trials=1)[0]
                    for _ in range(args.num_warmups)]
            trials = time_fn(trial, device, warmup=0, trials=args.num_trials)
            mem = R.peak_memory(prep.step, device)
            per_step = [t / args.num_steps for t in trials]
            m = R.summarize(per_step, prep, peak_flops=R.matmul_peak(device, args.precision),
                            peak_bytes=mem)
    except Exception as e:  # only an out-of-memory error becomes a result; the rest propagate
        if not R.is_oom(e):
            raise
        reason = f"OOM ({type(e).__name__})"
        R.release(device)
    if reason is not None:
        return {**out, "status": "oom", "reason": reason, "trial_times_ms": [],
                "mean_time_ms": None, "std_time_ms": None}
    ms = [1000 * t for t in trials]
    mean = sum(ms) / len(ms)
    std = math.sqrt(sum((t - mean) ** 2 for t in ms) / (len(ms) - 1)) if len(ms) > 1 else 0.0
    return {**out, "status": "ok", "trial_times_ms": ms, "mean_time_ms": mean, "std_time_ms": std,
            "warmup_times_ms": [1000 * t for t in warm],
            "first_step_ms": 1000 * (warm[0] if warm else trials[0] / args.num_steps),
            "mean_step_time_ms": m["mean_ms"], "median_step_time_ms": m["median_ms"],
            "num_params": m["num_params"], "flops_per_step": m["flops"],
            "tokens_per_s": m["tokens_per_s"], "tflops": m["tflops"],
            "peak_tflops": m["peak_tflops"], "mfu": m["mfu"],
            "peak_memory_mb": m["peak_memory_mb"]}


def cmd_run(args) -> int:
    out = Path(args.output)
    if out.exists():
        raise fail(str(out), "--output", "already exists; results are never overwritten")
    for name in ("context_length", "batch_size", "num_steps", "num_trials", "vocab"):
        if getattr(args, name) < 1:
            raise fail("command line", "--" + name, "must be >= 1")
    if args.num_warmups < 0:
        raise fail("command line", "--num_warmups", "must be >= 0")
    result = run(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.rename(out)
    shown = (f"{result['mean_time_ms']:.2f} +- {result['std_time_ms']:.2f} ms"
             if result["status"] == "ok" else result["reason"])
    print(f"{args.model_size} ctx {args.context_length} {result['mode']} {args.precision}: "
          f"{shown} -> {out}")
    return 0


# -- aggregate ----------------------------------------------------------------------------------

def load_results(results_dir: Path) -> list[dict]:
    if not results_dir.is_dir():
        raise fail(str(results_dir), "--results-dir", "no such directory")
    rows = []
    for path in sorted(results_dir.glob("*.json")):
        data = read_json(path)
        for key in ("model_size", "context_length", "mean_time_ms", "std_time_ms"):
            if key not in data:
                raise fail(str(path), key, "missing")
        data.setdefault("forward_only", False)
        data.setdefault("mode", "forward" if data["forward_only"] else "forward_backward")
        data["file"] = path.name
        rows.append(data)
    if not rows:
        raise fail(str(results_dir), "--results-dir", "no *.json results")
    return rows


def summary_tables(rows: list[dict]) -> dict:
    """The seed's three sections as DataFrames (the third only when both modes exist)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    frame["_order"] = frame["model_size"].map(SIZE_ORDER).fillna(len(SIZE_ORDER))
    frame = frame.sort_values(["_order", "model_size", "context_length", "mode"], kind="stable")
    cols = [c for c in ("model_size", "d_model", "context_length", "num_layers", "num_heads",
                        "batch_size", "forward_only", "mode", "precision", "mean_time_ms",
                        "std_time_ms", "num_params", "tokens_per_s", "mfu", "status")
            if c in frame]
    out = {"complete": frame[cols].reset_index(drop=True), "by_size": {}}
    for size, part in frame.groupby("model_size", sort=False):
        keep = [c for c in ("context_length", "mode", "precision", "mean_time_ms",
                            "std_time_ms") if c in part]
        out["by_size"][size] = part[keep].reset_index(drop=True)
    fwd = frame[frame["mode"] == "forward"]
    both = frame[frame["mode"] == "forward_backward"]
    if len(fwd) and len(both):
        keys = [k for k in ("model_size", "context_length", "precision") if k in frame]
        merged = fwd[keys + ["_order", "mean_time_ms"]].merge(
            both[keys + ["mean_time_ms"]], on=keys, suffixes=("_forward", "_fwd_bwd"))
        merged = merged.sort_values(["_order"] + keys[1:], kind="stable").drop(columns="_order")
        merged["backward_ms"] = merged["mean_time_ms_fwd_bwd"] - merged["mean_time_ms_forward"]
        merged["backward_over_forward"] = merged["backward_ms"] / merged["mean_time_ms_forward"]
        out["fwd_vs_bwd"] = merged.reset_index(drop=True)
    return out


def cmd_aggregate(args) -> int:
    for target in (args.output, args.csv):
        if target and Path(target).exists() and not args.force:
            raise fail(str(target), "output", "already exists (pass --force to replace it)")
    tables = summary_tables(load_results(Path(args.results_dir)))
    md = ["# Benchmark Summary", "", "## Complete Results", "",
          tables["complete"].to_markdown(index=False, floatfmt=".2f"), "",
          "## Results by Model Size", ""]
    for size, part in tables["by_size"].items():
        md += [f"### Model: {size}", "", part.to_markdown(index=False, floatfmt=".2f"), ""]
    md += ["## Forward-only vs Forward+Backward", ""]
    if "fwd_vs_bwd" in tables:
        md += [tables["fwd_vs_bwd"].to_markdown(index=False, floatfmt=".2f"), ""]
    else:
        md += ["(needs both forward_only=True and forward_only=False results)", ""]
    Path(args.output).write_text("\n".join(md))
    if args.csv:
        tables["complete"].to_csv(args.csv, index=False, lineterminator="\n")
    print(f"wrote {args.output}" + (f" and {args.csv}" if args.csv else ""))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchlab lm-timing", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="time one configuration, write the seed's JSON")
    r.add_argument("--model_size", required=True, help=f"label; known: {', '.join(SIZES)}")
    r.add_argument("--vocab", type=int, default=10_000, help="(default: %(default)s)")
    r.add_argument("--context_length", type=int, required=True)
    for k in ("d_model", "d_ff", "num_layers", "num_heads"):
        r.add_argument("--" + k, type=int, default=None, help="(default: the size's value)")
    r.add_argument("--batch_size", type=int, default=4, help="(default: %(default)s)")
    r.add_argument("--num_steps", type=int, default=1, help="steps per trial (default: 1)")
    r.add_argument("--num_warmups", type=int, default=5, help="(default: %(default)s)")
    r.add_argument("--num_trials", type=int, default=10, help="(default: %(default)s)")
    r.add_argument("--forward_only", action="store_true")
    r.add_argument("--mode", choices=("forward", "forward_backward", "train_step"), default=None,
                   help="overrides --forward_only; train_step adds an AdamW step")
    r.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="autocast dtype (default: %(default)s; fp16 only on CUDA)")
    r.add_argument("--attn", choices=("sdpa", "einsum"), default="sdpa")
    r.add_argument("--impl", choices=("ours", "peer"), default="ours",
                   help="ours, or peer = transformers LlamaForCausalLM (default: %(default)s)")
    r.add_argument("--compile", action="store_true", help="torch.compile the model")
    r.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    r.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    r.add_argument("--data_path", default=None, help=".npy token array (memory-mapped)")
    r.add_argument("--output", required=True, help="JSON file to write (never overwritten)")
    a = sub.add_parser("aggregate", help="tables of a directory of run JSON files")
    a.add_argument("--results-dir", required=True)
    a.add_argument("--output", required=True, help="markdown summary")
    a.add_argument("--csv", default=None, help="CSV of the complete results")
    a.add_argument("--force", action="store_true", help="replace existing summary files")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.command == "run":
        return cmd_run(args)
    return cmd_aggregate(args)


__all__ = ["main", "run", "summary_tables", "load_results", "SEED_FIELDS", "BenchlabError"]
