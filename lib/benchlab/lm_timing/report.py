"""Tables and figures of the transformer-timing records (depends only on the records).

    benchlab report out.json --outdir reports     # rebuilds reports/lm_timing/ from saved results

Tables (md, csv, tex): steps, num_params, fwd_vs_bwd, pairs (peer and bf16 ratios), warmup,
attention, matmul_peak. Figures: time_vs_context, fwd_vs_fwd_bwd, warmup, mfu_by_size,
peer_ratio.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from benchlab.core.report import new_figure, records_frame, save_figure, write_table

from .model import SIZES

ORDER = {name: i for i, name in enumerate(SIZES)}
MODE_ORDER = {"forward": 0, "forward_backward": 1, "train_step": 2}


def _kind(frame: pd.DataFrame, *kinds) -> pd.DataFrame:
    if "case.kind" not in frame:
        return frame.iloc[0:0]
    part = frame[frame["case.kind"].isin(kinds)].drop(columns=["case.id"], errors="ignore")
    clash = [c.removeprefix("case.") for c in part if c.startswith("case.")]
    part = part.drop(columns=[c for c in clash if c in part])  # case fields win over metrics
    return part.rename(columns=lambda c: c.removeprefix("case.")).dropna(axis=1, how="all")


def _col(frame, name, default=np.nan):
    return frame[name] if name in frame else pd.Series(default, index=frame.index)


def _sorted(frame, *keys):
    frame = frame.assign(_o=frame["size"].map(ORDER).fillna(99))
    if "mode" in frame:
        frame = frame.assign(_m=frame["mode"].map(MODE_ORDER))
        keys = tuple("_m" if k == "mode" else k for k in keys)
    return frame.sort_values(["_o", *keys], kind="stable").drop(columns=["_o", "_m"],
                                                                 errors="ignore")


def step_table(steps: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({
        "size": steps["size"], "context": steps["context"], "mode": steps["mode"],
        "precision": steps["precision"], "attn": steps["attn"], "compile": steps["compile"],
        "status": _col(steps, "status", "ok"), "num_params": _col(steps, "num_params"),
        "mean_ms": _col(steps, "mean_ms"), "std_ms": _col(steps, "std_ms"),
        "median_ms": _col(steps, "median_ms"), "first_step_ms": _col(steps, "first_step_ms"),
        "tokens_per_s": _col(steps, "tokens_per_s"), "gflop": _col(steps, "flops") / 1e9,
        "tflops": _col(steps, "tflops"), "mfu": _col(steps, "mfu"),
        "peak_memory_mb": _col(steps, "peak_memory_mb")})
    return _sorted(out, "context", "mode", "precision", "attn", "compile").reset_index(drop=True)


def fwd_bwd_table(table: pd.DataFrame) -> pd.DataFrame:
    plain = table[(table["attn"] == "sdpa") & (~table["compile"].astype(bool))
                  & (table["status"] == "ok")]
    if plain.empty:
        return plain
    wide = plain.pivot_table(index=["size", "context", "precision"], columns="mode",
                             values="mean_ms").reset_index()
    wide.columns.name = None
    if "forward" in wide and "forward_backward" in wide:
        wide["backward_ms"] = wide["forward_backward"] - wide["forward"]
        wide["backward_over_forward"] = wide["backward_ms"] / wide["forward"]
    if "train_step" in wide and "forward_backward" in wide:
        wide["adamw_ms"] = wide["train_step"] - wide["forward_backward"]
    return _sorted(wide, "context", "precision").reset_index(drop=True)


def pair_table(pairs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({
        "kind": pairs["kind"], "size": pairs["size"], "context": pairs["context"],
        "mode": pairs["mode"], "a": pairs["a_impl"] + "/" + pairs["a_precision"],
        "b": pairs["b_impl"] + "/" + pairs["b_precision"], "status": _col(pairs, "status", "ok"),
        "a_median_ms": _col(pairs, "a_median_ms"), "b_median_ms": _col(pairs, "b_median_ms"),
        "ratio_a_over_b": _col(pairs, "ratio"),  # median over rounds of the paired a / b
        "ratio_of_medians": _col(pairs, "ratio_of_medians"),
        "ratio_of_mins": _col(pairs, "ratio_min"),
        "rounds": _col(pairs, "rounds_timed")})
    out["goal"] = "<= 1.0" if len(out) else []
    out["met"] = out["ratio_a_over_b"] <= 1.0
    return _sorted(out, "kind", "context", "a").reset_index(drop=True)


def report(records: list[dict], outdir) -> None:
    outdir = Path(outdir)
    frame = records_frame(records)
    steps, pairs = _kind(frame, "step"), _kind(frame, "peer", "bf16")
    warm, attn, peak = _kind(frame, "warmup"), _kind(frame, "attn"), _kind(frame, "peak")
    if not steps.empty:
        table = step_table(steps)
        write_table(table, outdir, "steps")
        params = table.groupby("size", sort=False)["num_params"].first().reset_index()
        write_table(params, outdir, "num_params", floatfmt=".0f")
        fb = fwd_bwd_table(table)
        if not fb.empty:
            write_table(fb, outdir, "fwd_vs_bwd")
            plot_fwd_bwd(fb, outdir)
        plot_time_vs_context(table, outdir)
        plot_mfu(table, outdir)
    if not pairs.empty:
        pt = pair_table(pairs)
        write_table(pt, outdir, "pairs")
        plot_pairs(pt, outdir)
    if not warm.empty:
        wt = pd.DataFrame({"size": warm["size"], "context": warm["context"],
                           "mode": warm["mode"], "warmups": warm["warmups"],
                           "first_step_ms": _col(warm, "first_step_ms"),
                           "mean_ms": _col(warm, "mean_ms"), "std_ms": _col(warm, "std_ms"),
                           "median_ms": _col(warm, "median_ms"),
                           "fresh_process": _col(warm, "fresh_process", False)})
        wt = wt.sort_values("warmups", kind="stable").reset_index(drop=True)
        write_table(wt, outdir, "warmup")
        plot_warmup(wt, outdir)
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


# -- figures ------------------------------------------------------------------------------------

def plot_time_vs_context(table, outdir):
    ok = table[(table["status"] == "ok") & (table["attn"] == "sdpa")
               & (~table["compile"].astype(bool))]
    modes = [m for m in MODE_ORDER if m in set(ok["mode"])]
    if not modes:
        return
    fig, axes = new_figure(1, len(modes), sharey=False)
    axes = np.ravel(axes)
    for ax, mode in zip(axes, modes, strict=True):
        part = ok[ok["mode"] == mode]
        for (size, prec), g in part.groupby(["size", "precision"], sort=False):
            g = g.sort_values("context")
            ax.errorbar(g["context"], g["mean_ms"], yerr=g["std_ms"].fillna(0), marker="o",
                        capsize=2, label=f"{size} {prec}")
        ax.set_xscale("log", base=2)
        ax.set(yscale="log", xlabel="context length", ylabel="ms per step", title=mode)
        ticks = sorted(set(part["context"]))
        ax.set_xticks(ticks, [str(int(c)) for c in ticks])
        ax.set_xticks([], minor=True)
        ax.legend(fontsize=7)
    save_figure(fig, outdir, "time_vs_context")


def plot_fwd_bwd(fb, outdir):
    if "backward_ms" not in fb:
        return
    fig, axes = new_figure(1, 2)
    ax1, ax2 = np.ravel(axes)
    labels = [f"{s}\n{c} {p}" for s, c, p in zip(fb["size"], fb["context"], fb["precision"],
                                                 strict=True)]
    x = np.arange(len(fb))
    ax1.bar(x - 0.2, fb["forward"], 0.4, label="forward")
    ax1.bar(x + 0.2, fb["forward_backward"], 0.4, label="forward+backward")
    ax1.set(ylabel="ms per step", yscale="log", title="forward vs forward+backward")
    ax1.set_xticks(x, labels, fontsize=6, rotation=90)
    ax1.legend(fontsize=7)
    ax2.bar(x, fb["backward_over_forward"], color="tab:green")
    ax2.axhline(2.0, color="k", lw=0.8, ls="--", label="2x (FLOP ratio)")
    ax2.set(ylabel="backward / forward time", title="backward / forward ratio")
    ax2.set_xticks(x, labels, fontsize=6, rotation=90)
    ax2.legend(fontsize=7)
    save_figure(fig, outdir, "fwd_vs_fwd_bwd")


def plot_warmup(wt, outdir):
    fig, ax = new_figure()
    x = np.arange(len(wt))
    ax.bar(x - 0.2, wt["mean_ms"], 0.4, yerr=wt["std_ms"].fillna(0), capsize=3,
           label="mean of timed steps")
    ax.bar(x + 0.2, wt["first_step_ms"], 0.4, label="first step (cold)")
    ax.set_xticks(x, [str(w) for w in wt["warmups"]])
    ax.set(xlabel="warm-up steps", ylabel="ms per step", title="warm-up effect")
    ax.legend(fontsize=7)
    save_figure(fig, outdir, "warmup")


def plot_mfu(table, outdir):
    ok = table[(table["status"] == "ok") & table["mfu"].notna() & (table["attn"] == "sdpa")]
    if ok.empty:
        return
    fig, ax = new_figure()
    for (mode, prec, ctx), g in ok.groupby(["mode", "precision", "context"], sort=True):
        g = g.assign(o=g["size"].map(ORDER)).sort_values("o").drop_duplicates("size")
        ax.plot(g["o"], g["mfu"], marker="o", label=f"{mode} {prec} ctx{ctx}")
    sizes = sorted(set(ok["size"]), key=lambda s: ORDER.get(s, 99))
    ax.set_xticks([ORDER[s] for s in sizes], sizes)
    ax.set(xlabel="model size", ylabel="MFU (vs same-run matmul peak)", title="MFU by size")
    ax.legend(fontsize=5, ncol=2)
    save_figure(fig, outdir, "mfu_by_size")


def plot_pairs(pt, outdir):
    fig, ax = new_figure(size=(max(4.5, 0.5 * len(pt)), 3.6))
    x = np.arange(len(pt))
    colors = ["tab:blue" if k == "peer" else "tab:orange" for k in pt["kind"]]
    ax.bar(x, pt["ratio_a_over_b"], color=colors)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    labels = [f"{k}: {s} {int(c)}\n{a} / {b}" for k, s, c, a, b in
              zip(pt["kind"], pt["size"], pt["context"], pt["a"], pt["b"], strict=True)]
    ax.set_xticks(x, labels, fontsize=6, rotation=90)
    ax.set(ylabel="time a / b (paired median)",
           title="ours / HF LLaMA peer; bf16 / fp32")
    save_figure(fig, outdir, "peer_ratio")
