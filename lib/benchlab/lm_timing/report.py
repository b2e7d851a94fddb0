"""Tables and figures of the transformer-timing records (depends only on the records).

    benchlab report out.json --outdir reports     # rebuilds reports/lm_timing/ from saved results

Tables (md, csv, tex): steps (the sweep's medians and the MFU of the median), num_params,
fwd_vs_bwd (paired ratios of the same rounds), pairs (peer and bf16 paired ratios with the goal's
verdict), runs (`lm-timing run` records, each timed alone), warmup, attention, matmul_peak;
README.md with a sentence per claim. Figures: time_vs_context, fwd_vs_fwd_bwd, warmup,
mfu_by_size, peer_ratio.
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from benchlab.core.report import records_frame, write_table
from benchlab.core.stats import MIN_UNITS, VERDICT_COLUMNS, compare_paired, verdict

from . import figures
from .builders import MODES, variant_tag
from .figures import MODE_ORDER, ORDER
from .model import DIMS, SIZES, num_params


def _kind(frame: pd.DataFrame, *kinds) -> pd.DataFrame:
    if "case.kind" not in frame:
        return frame.iloc[0:0]
    part = frame[frame["case.kind"].isin(kinds)].drop(columns=["case.id"], errors="ignore")
    clash = [c.removeprefix("case.") for c in part if c.startswith("case.")]
    part = part.drop(columns=[c for c in clash if c in part])  # case fields win over metrics
    return part.rename(columns=lambda c: c.removeprefix("case.")).dropna(axis=1, how="all")


def _col(frame, name, default=np.nan):
    if name not in frame:
        return pd.Series(default, index=frame.index)
    if isinstance(default, float):  # numbers; a stored "nan" string reads as NaN
        return pd.to_numeric(frame[name], errors="coerce")
    return frame[name]


def _sorted(frame, *keys):
    frame = frame.assign(_o=frame["size"].map(ORDER).fillna(99))
    if "mode" in frame:
        frame = frame.assign(_m=frame["mode"].map(MODE_ORDER))
        keys = tuple("_m" if k == "mode" else k for k in keys)
    return frame.sort_values(["_o", *keys], kind="stable").drop(columns=["_o", "_m"],
                                                                 errors="ignore")


def _params(frame) -> pd.Series:
    """num_params as integers; an OOM record's from the analytic count of its size."""
    known = params_table(frame).set_index("size")["num_params"]
    return _col(frame, "num_params").fillna(frame["size"].map(known)).astype("Int64")


def run_table(steps: pd.DataFrame) -> pd.DataFrame:
    """`lm-timing run` records (kind "step"), each timed alone: no row compares with another."""
    out = pd.DataFrame({
        "size": steps["size"], "context": steps["context"], "mode": steps["mode"],
        "precision": steps["precision"], "attn": steps["attn"], "compile": steps["compile"],
        "status": _col(steps, "status", "ok"), "num_params": _params(steps),
        "mean_ms": _col(steps, "mean_ms"), "std_ms": _col(steps, "std_ms"),
        "median_ms": _col(steps, "median_ms"), "first_step_ms": _col(steps, "first_step_ms"),
        "tokens_per_s": _col(steps, "tokens_per_s"), "gflop": _col(steps, "flops") / 1e9,
        "tflops": _col(steps, "tflops"), "mfu": _col(steps, "mfu"),
        "peak_memory_mb": _col(steps, "peak_memory_mb")})
    return _sorted(out, "context", "mode", "precision", "attn", "compile").reset_index(drop=True)


def _variants(sweep: pd.DataFrame):
    """(record row, mode, precision, attn, compile, tag, that variant's metrics) of every
    variant of every sweep record."""
    for _, r in sweep.iterrows():
        for mode, prec, attn, comp in r["variants"]:
            tag = variant_tag(mode, prec, attn, bool(comp))
            m = {k.removeprefix(tag + "."): v for k, v in r.items()
                 if isinstance(k, str) and k.startswith(tag + ".")}
            yield r, mode, prec, attn, bool(comp), m


def sweep_table(sweep: pd.DataFrame) -> pd.DataFrame:
    """The sweep, one row per step: every step of a size and context was timed side by side in
    the same rotated rounds; medians over rounds, and the rates and MFU of the median."""
    rows = []
    for r, mode, prec, attn, comp, m in _variants(sweep):
        status = r.get("status", "ok") if r.get("status", "ok") != "ok" else m.get("status", "ok")
        rows.append({"size": r["size"], "context": int(r["context"]), "mode": mode,
                     "precision": prec, "attn": attn, "compile": comp, "status": status,
                     "num_params": r.get("num_params"),
                     "rounds": len(m["trial_times_ms"]) if status == "ok" and isinstance(
                         m.get("trial_times_ms"), list) else 0,
                     **{k: m.get(k, np.nan) for k in (
                         "median_ms", "mean_ms", "std_ms", "first_step_ms", "tokens_per_s")},
                     "gflop": m.get("flops", np.nan) / 1e9,
                     **{k: m.get(k, np.nan) for k in ("tflops", "mfu", "peak_memory_mb")}})
    out = pd.DataFrame(rows)
    out["num_params"] = _params(out)
    return _sorted(out, "context", "mode", "precision", "attn", "compile").reset_index(drop=True)


def paired(a, b) -> dict:
    """compare_paired(a, b, kind="ratio") over rounds (the unit of a timing: one rotated round
    holds one step of each), or an empty row without times."""
    if not isinstance(a, list) or not isinstance(b, list) or not a:
        return {"n_units": 0, "estimate": np.nan, "ci_lo": np.nan, "ci_hi": np.nan,
                "p": np.nan, "null": 1.0}
    return compare_paired(a, b, kind="ratio")


def modes_table(sweep: pd.DataFrame) -> pd.DataFrame:
    """forward / forward+backward / train step of each sweep record (the same rounds): medians
    and the paired ratios (median of per-round ratios) with their 95% bootstrap intervals."""
    groups: dict = {}
    for r, mode, prec, attn, comp, m in _variants(sweep):
        if m.get("status", "ok") == "ok" and r.get("status", "ok") == "ok":
            groups.setdefault((r["size"], int(r["context"]), prec, attn, comp), {})[mode] = m
    rows = []
    for (size, ctx, prec, attn, comp), ms in groups.items():
        if "forward" not in ms or "forward_backward" not in ms:
            continue
        f, fb, ts = (ms.get(k, {}).get("trial_times_ms") for k in MODES)
        one, two = paired(fb, f), paired(ts, fb)  # no train step: an empty row
        rows.append({"size": size, "context": ctx, "precision": prec, "attn": attn,
                     "compile": comp, "status": "ok",
                     **{f"{k}_ms": ms.get(k, {}).get("median_ms", np.nan) for k in MODES},
                     "fwd_bwd_over_fwd": one["estimate"], "lo": one["ci_lo"],
                     "hi": one["ci_hi"], "train_over_fwd_bwd": two["estimate"],
                     "train_lo": two["ci_lo"], "train_hi": two["ci_hi"],
                     "rounds": one["n_units"]})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["backward_over_forward"] = out["fwd_bwd_over_fwd"] - 1
    return _sorted(out, "context", "precision", "attn", "compile").reset_index(drop=True)


def warmup_table(warm: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, r in warm.iterrows():
        for w in r["counts"]:
            rows.append({"size": r["size"], "context": int(r["context"]), "mode": r["mode"],
                         "warmups": int(w), "repeats": int(r["repeats"]),
                         **{k: r.get(f"w{w}_{k}", np.nan) for k in
                            ("mean_ms", "lo_ms", "hi_ms", "first_step_ms")}})
    out = pd.DataFrame(rows)
    for k in ("mean_ms", "lo_ms", "hi_ms", "first_step_ms"):
        out[k] = pd.to_numeric(out[k], errors="coerce")
    return out


def params_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Analytic parameter counts of every size any record ran (OOM ones too), vocab 10000."""
    ran = set(frame["size"].dropna()) if "size" in frame else set()
    rows = [{"size": s, **{k: getattr(c, k) for k in DIMS},
             "num_params": num_params(replace(c, vocab_size=10_000))}
            for s, c in SIZES.items() if s in ran]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["size", "num_params"])


GOAL = 1.0  # a pair's goal: a no slower than b (time a / b <= 1)


def pair_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """Each pair's paired ratio a / b over rounds (compare_paired) and the goal's verdict from
    its interval (core.stats.verdict, p_adj None, null = the goal): "met" when the whole 95%
    interval lies below 1, "missed" when above, "not shown" otherwise or under MIN_UNITS."""
    out = pd.DataFrame({
        "kind": pairs["kind"], "size": pairs["size"], "context": pairs["context"],
        "mode": pairs["mode"], "a": pairs["a_impl"] + "/" + pairs["a_precision"],
        "b": pairs["b_impl"] + "/" + pairs["b_precision"], "status": _col(pairs, "status", "ok"),
        "a_median_ms": _col(pairs, "a_median_ms"), "b_median_ms": _col(pairs, "b_median_ms"),
        "ratio_of_medians": _col(pairs, "ratio_of_medians"),
        "ratio_of_mins": _col(pairs, "ratio_min")})
    a, b = _col(pairs, "a_trial_times_ms", None), _col(pairs, "b_trial_times_ms", None)
    rows = []
    for ta, tb in zip(a, b, strict=True):
        row = {**paired(ta, tb), "null": GOAL}
        row |= {"p": np.nan, "p_holm": np.nan, "better": "below",  # a goal: no test
                "verdict": verdict(row["ci_lo"], row["ci_hi"], None, row["n_units"], null=GOAL,
                                   better="below", words=("met", "missed"))}
        rows.append({k: row[k] for k in VERDICT_COLUMNS})
    out = pd.concat([out, pd.DataFrame(rows, index=out.index, columns=list(VERDICT_COLUMNS))],
                    axis=1)
    out["goal"] = f"<= {GOAL}"
    return _sorted(out, "kind", "context", "a").reset_index(drop=True)


NOTES = """# Transformer timing report

Every timing is measured side by side: the steps of one size and context (the sweep, `steps`)
and each pair's two contenders run in rounds, once each per round, in an order rotated every
round (benchlab.core.timing). Times are medians over rounds; a ratio is the median of the
per-round ratios with a 95% bootstrap interval over rounds, the unit of a timing
(core.stats.compare_paired: `lo`, `hi` or `ci_lo`, `ci_hi`). `fwd_vs_bwd` is read from the same
rounds as `steps`. A pair's goal (a no slower than b) is "met" only when the whole interval
lies below 1, "missed" when it lies above, else "not shown" (and always with fewer than
5 rounds): the columns n_units ... verdict recompute it (core.stats.check_verdict). `runs`
holds `lm-timing run` records, each timed alone in its own process: not compared.
Timings on a shared CPU are for ratios, not absolute speed.

MFU is the step's FLOPs over its median time over the same run's matmul peak (`matmul_peak`).
FLOPs use the analytic formula (lm_timing.model.step_flops: matmuls plus the attention
scores and weighted sum, backward = 2 x forward). On CPU with SDPA, torch's FlopCounterMode
misses the attention term (67,108,864 FLOPs at tiny 4 x 128), so the formula is the reference.
"""


def _interval(lo, hi, n, fmt=".2f") -> str:
    return (f"95% CI [{lo:{fmt}}, {hi:{fmt}}]" if n >= MIN_UNITS and np.isfinite(lo)
            else "interval not shown at this scale")


def _claims(mt: pd.DataFrame, pt: pd.DataFrame, wt: pd.DataFrame) -> list[str]:
    lines = []
    for _, r in mt.iterrows():
        n = int(r["rounds"])
        train = (f"; the AdamW train step {r['train_over_fwd_bwd']:.2f}x forward+backward "
                 f"({_interval(r['train_lo'], r['train_hi'], n)})"
                 if np.isfinite(r["train_over_fwd_bwd"]) else "")
        setting = r["precision"] + (f" {r['attn']}" if r["attn"] != "sdpa" else "") + (
            " compiled" if r["compile"] else "")
        lines.append(f"- {r['size']} ctx {r['context']} {setting}: forward+backward takes "
                     f"{r['fwd_bwd_over_fwd']:.2f}x the forward time "
                     f"({_interval(r['lo'], r['hi'], n)}; {n} paired rounds){train}.")
    for _, r in pt[pt["status"] == "ok"].iterrows():
        iv = _interval(r["ci_lo"], r["ci_hi"], r["n_units"], ".3f")
        lines.append(f"- {r['kind']} {r['size']} ctx {int(r['context'])} {r['a']} / {r['b']}: "
                     f"{r['estimate']:.3f} ({iv}; {int(r['n_units'])} rounds); goal "
                     f"{r['goal']}: {r['verdict']}.")
    for _, r in wt.iterrows():
        iv = (f"95% CI [{r['lo_ms']:.1f}, {r['hi_ms']:.1f}] ms" if np.isfinite(r["lo_ms"])
              else "interval not shown at this scale")
        lines.append(f"- warm-up {r['warmups']}: mean step {r['mean_ms']:.1f} ms ({iv}; "
                     f"{r['repeats']} fresh processes), first step {r['first_step_ms']:.1f} ms.")
    return lines


def report(records: list[dict], outdir) -> None:
    outdir = Path(outdir)
    frame = records_frame(records)
    runs, pairs = _kind(frame, "step"), _kind(frame, "peer", "bf16")
    warm, attn, peak = _kind(frame, "warmup"), _kind(frame, "attn"), _kind(frame, "peak")
    sweep = _kind(frame, "sweep")
    everything = pd.concat([runs, pairs, sweep, warm], ignore_index=True)
    if not everything.empty:
        write_table(params_table(everything), outdir, "num_params", floatfmt=".0f")
    mt, pt, wt, table = pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), None
    if not runs.empty:
        table = run_table(runs)
        write_table(table, outdir, "runs")
    if not sweep.empty:
        table = sweep_table(sweep)
        write_table(table, outdir, "steps")
        mt = modes_table(sweep)
        if not mt.empty:
            write_table(mt, outdir, "fwd_vs_bwd")
            figures.plot_fwd_bwd(mt, outdir)
    if table is not None:  # the sweep's, else the runs' (a CLI store)
        figures.plot_time_vs_context(table, outdir)
        figures.plot_mfu(table, outdir)
    if not pairs.empty:
        pt = pair_table(pairs)
        write_table(pt, outdir, "pairs")
        figures.plot_pairs(pt, outdir)
    if not warm.empty:
        wt = warmup_table(warm)
        write_table(wt, outdir, "warmup")
        figures.plot_warmup(wt, outdir)
    if not attn.empty:
        at = pd.DataFrame({"context": attn["context"], "precision": attn["precision"],
                           "impl": attn["impl"], "mean_ms": _col(attn, "mean_ms"),
                           "max_abs_diff": _col(attn, "max_abs_diff")})
        wide = at.pivot_table(index=["context", "precision"], columns="impl",
                              values="mean_ms").reset_index()
        wide.columns.name = None
        if "einsum" in wide and "sdpa" in wide:
            wide["einsum_over_sdpa"] = wide["einsum"] / wide["sdpa"]
        write_table(wide.sort_values(["context", "precision"]).reset_index(drop=True), outdir,
                    "attention")
    if not peak.empty:
        pk = pd.DataFrame({"precision": peak["precision"],
                           "peak_tflops": _col(peak, "peak_tflops"), "n": _col(peak, "n")})
        write_table(pk.sort_values("precision").reset_index(drop=True), outdir, "matmul_peak")
    claims = _claims(mt, pt, wt) if len(mt) or len(pt) or len(wt) else []
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "README.md").write_text(NOTES + ("\n## Claims\n\n" + "\n".join(claims) + "\n"
                                               if claims else ""))
