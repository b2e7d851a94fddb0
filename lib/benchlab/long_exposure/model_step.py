"""`benchlab long-exposure model-step`: the bench's model_step case from the command line.

    benchlab long-exposure model-step --scale small --masks synthetic --density 0.25 \
        --rounds 10 --out reports/long_exposure/model_step_small_synthetic.json

Its record goes through core.session.Run into `store.jsonl` in the folder of --out, so runs
and the bench compare with `benchlab compare`; the printed result (and --out's JSON) adds the
break-even curves and round times, --out's .md the verdict table (report_timing).
"""

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchlab.core import machine
from benchlab.core.errors import BenchlabError
from benchlab.core.timing import threads

DEFAULT_DIR = Path(".benchlab") / "long_exposure" / "model_step"  # of store.jsonl without --out


def step_config(args):
    """The scale's Config with the command's model, init, seq_len, density, rounds, threads."""
    from . import CONFIGS

    cfg = CONFIGS[args.scale]
    if cfg.step_model is None and args.model is None:
        raise BenchlabError(f"--scale: {args.scale} has no step_model; pass --model")
    densities = cfg.step_densities
    if args.masks == "synthetic" and args.density not in densities:
        densities = (args.density,)
    return replace(cfg, step_model=args.model or cfg.step_model,
                   step_init=args.init or cfg.step_init, step_seq_lens=(args.seq_len,),
                   step_densities=densities, step_rounds=args.rounds, threads=args.threads)


def step_case(config, masks: str, density: float):
    """The config's model_step case with these masks (and, synthetic, this density)."""
    from . import model_step_cases

    return next(c for c in model_step_cases(config)
                if c.masks == masks and (masks == "exposed" or c.density == density))


def run(args) -> int:
    """Measure, record (through Run), print one JSON line; with --out also its JSON and .md."""
    from ..core.session import Run, seed_everything
    from ..core.timing import Timer
    from . import setups
    from .measure import STEP_DENSE, flex_speedups, model_step_metrics, model_step_run

    cfg = step_config(args)
    case = step_case(cfg, args.masks, args.density)
    session = Run("long_exposure", args.scale, device=args.device, config=cfg,
                  store=(Path(args.out).parent if args.out else DEFAULT_DIR) / "store.jsonl")
    with threads(args.threads) as n:
        seed_everything(session.seed)
        be, ts, mem, times = model_step_run(case, cfg, Timer(None, session.device))
        record = session.save(session.record(
            "model_step", case, model_step_metrics(case, n, be, ts, mem, times)))
    t = {**setups.speedups({k: times[k] for k in ("le", *STEP_DENSE)}), **flex_speedups(times)}
    m = record["metrics"]
    result = {"model": case.model, "init": case.init, "seq_len": case.seq_len,
              "masks": case.masks, "device": args.device, "machine": machine.facts(),
              "density": args.density if args.masks == "synthetic" else None, **t,
              "t_le_dispatch": float(np.median(times["le_dispatch"])),
              **{k: m[k] for k in ("break_even_attn", "break_even_mlp", "memory_ratio",
                                   "memory_ratio_sdpa_docs", "memory_ratio_eager",
                                   "density_attn", "density_doc", "density_mlp",
                                   "keeps_everything", "layer_density_attn",
                                   "layer_density_mlp")},
              "break_even_curves": {k: {str(d): r for d, r in be[f"{k}_curve"].items()}
                                    for k in ("attn", "mlp")},
              "rounds": args.rounds, "threads": args.threads,
              "times": {k: list(v) for k, v in times.items()}}
    print(json.dumps(result))
    print(f"recorded {record['case']} in {session.store.path}", file=sys.stderr)
    if args.out:
        from ..core.store import atomic_path

        out = Path(args.out)
        with atomic_path(out) as tmp:
            tmp.write_text(json.dumps(result, indent=1) + "\n")
        out.with_suffix(".md").write_text(model_step_md(result))
    return 0


def verdicts(r: dict):
    """The result's timing verdict rows (report_timing.step_table on its round times)."""
    import pandas as pd

    from .report_timing import step_table

    row = {"kind": "model_step", "case.model": r["model"], "case.init": r["init"],
           "case.masks": r["masks"], "case.density": r.get("density"),
           "case.seq_len": r["seq_len"],
           **{k: r.get(k) for k in ("density_attn", "density_doc", "density_mlp")},
           **{f"t_rounds_{k}": v for k, v in r["times"].items()}}
    return step_table(pd.DataFrame([row]), "model_step")


def model_step_md(r: dict) -> str:
    """The result's claims: its verdict table, densities, memory."""
    keeps = " (the masks keep everything)" if r["keeps_everything"] else ""
    gpu = r.get("machine", {}).get("gpu")
    where = ("a shared 2-core machine under contention" if r.get("device", "cpu") == "cpu"
             else f"{r['device']} ({gpu})" if gpu else r["device"])
    table = verdicts(r)
    cols = ["contender", "baseline", "t_contender", "t_baseline", "n_units", "estimate",
            "ci_lo", "ci_hi", "p", "p_holm", "verdict"]
    return "\n".join([
        f"LoRA step of {r['model']} (init {r['init']}) at L={r['seq_len']} on one packed row, "
        f"masks {r['masks']}, {r['threads']} thread, {r['rounds']} rotated rounds, attention "
        f"inside documents in every mode but sdpa_causal (a cost reference). Measured on "
        f"{where}.",
        "",
        f"Densities LE ran at: attention {r['density_attn']:.3f} of causal blocks (documents "
        f"alone {r['density_doc']:.3f}), MLP {r['density_mlp']:.3f}{keeps}.",
        "",
        "estimate: median over rounds of contender / baseline step seconds (below 1: the "
        "contender is faster), 95% bootstrap interval over rounds, paired t-test on the log "
        "ratios, Holm over the table; fewer than 5 rounds: not shown. per_document (SDPA on "
        "each document) is the exact dense reference.",
        "",
        table[cols].to_markdown(index=False, floatfmt=".3g"),
        "",
        f"- Break-even densities measured in this run: attention {r['break_even_attn']:.2f}, "
        f"MLP {r['break_even_mlp']:.2f} (le_dispatch runs a part dense above them).",
        f"- Memory: LE / SDPA with document mask {r['memory_ratio']:.2f}, LE / per-document "
        f"SDPA {r['memory_ratio_sdpa_docs']:.2f}, LE / eager {r['memory_ratio_eager']:.2f}.",
        ""])
