"""Tables and figures of the transformer-timing records (depends only on the records).

    benchlab report out.json --outdir reports     # rebuilds reports/lm_timing/ from saved results

Tables (md, csv, tex): steps, num_params, fwd_vs_bwd (forward / forward+backward / train step
side by side), pairs (peer and bf16 ratios), warmup, attention, matmul_peak; README.md with a
sentence per claim. Figures: time_vs_context, fwd_vs_fwd_bwd, warmup, mfu_by_size,
peer_ratio.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from benchlab.core.report import new_figure, records_frame, save_figure, write_table

from .model import SIZES, ModelConfig, num_params

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
    known = dict(zip(params_table(frame)["size"], params_table(frame)["num_params"],
                     strict=True)) if len(frame) else {}
    got = _col(frame, "num_params")
    return got.fillna(frame["size"].map(known)).astype("Int64")


def step_table(steps: pd.DataFrame) -> pd.DataFrame:
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


def modes_table(modes: pd.DataFrame) -> pd.DataFrame:
    """forward / forward+backward / train step measured side by side: medians and the paired
    ratios (median of per-round ratios) with their 95% bootstrap intervals."""
    fb, ts = "ratio_forward_backward_over_forward", "ratio_train_step_over_forward_backward"
    out = pd.DataFrame({
        "size": modes["size"], "context": modes["context"].astype(int),
        "precision": modes["precision"], "status": _col(modes, "status", "ok"),
        "forward_ms": _col(modes, "forward_ms"),
        "forward_backward_ms": _col(modes, "forward_backward_ms"),
        "train_step_ms": _col(modes, "train_step_ms"),
        "fwd_bwd_over_fwd": _col(modes, fb), "lo": _col(modes, fb + "_lo"),
        "hi": _col(modes, fb + "_hi"), "train_over_fwd_bwd": _col(modes, ts),
        "train_lo": _col(modes, ts + "_lo"), "train_hi": _col(modes, ts + "_hi"),
        "rounds": _col(modes, "rounds_timed")})
    out["backward_over_forward"] = out["fwd_bwd_over_fwd"] - 1
    return _sorted(out, "context", "precision").reset_index(drop=True)


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
    sizes = [s for s in SIZES if "size" in frame and s in set(frame["size"].dropna())]
    rows = []
    if not sizes:
        return pd.DataFrame(columns=["size", "num_params"])
    for s in sizes:
        c = SIZES[s]
        rows.append({"size": s, "d_model": c.d_model, "d_ff": c.d_ff, "num_layers": c.num_layers,
                     "num_heads": c.num_heads, "num_params": num_params(
                         ModelConfig(c.d_model, c.d_ff, c.num_layers, c.num_heads, 10_000))})
    return pd.DataFrame(rows)


def pair_table(pairs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({
        "kind": pairs["kind"], "size": pairs["size"], "context": pairs["context"],
        "mode": pairs["mode"], "a": pairs["a_impl"] + "/" + pairs["a_precision"],
        "b": pairs["b_impl"] + "/" + pairs["b_precision"], "status": _col(pairs, "status", "ok"),
        "a_median_ms": _col(pairs, "a_median_ms"), "b_median_ms": _col(pairs, "b_median_ms"),
        "ratio_a_over_b": _col(pairs, "ratio"),  # median over rounds of the paired a / b
        "lo": _col(pairs, "ratio_lo"), "hi": _col(pairs, "ratio_hi"),  # its 95% bootstrap CI
        "ratio_of_medians": _col(pairs, "ratio_of_medians"),
        "ratio_of_mins": _col(pairs, "ratio_min"),
        "rounds": _col(pairs, "rounds_timed")})
    out["goal"] = "<= 1.0" if len(out) else []
    out["met"] = out["ratio_a_over_b"] <= 1.0
    return _sorted(out, "kind", "context", "a").reset_index(drop=True)


NOTES = """# Transformer timing report

Comparisons are measured side by side: contenders run in alternating rounds, the order rotated
every round (benchlab.core.timing), and a ratio is the median of the per-round ratios with a 95%
bootstrap interval over rounds (`lo`, `hi`; blank with fewer than 3 rounds: not shown at this
scale). Timings on a shared CPU are for ratios, not absolute speed.

FLOPs and MFU use the analytic formula (lm_timing.model.step_flops: matmuls plus the attention
scores and weighted sum, backward = 2 x forward). On CPU with SDPA, torch's FlopCounterMode
misses the attention term (67,108,864 FLOPs at tiny 4 x 128), so the formula is the reference.
"""


def _claims(mt: pd.DataFrame, wt: pd.DataFrame) -> list[str]:
    lines = []
    for _, r in mt[mt["status"] == "ok"].iterrows():
        iv = (f"95% CI [{r['lo']:.2f}, {r['hi']:.2f}]" if np.isfinite(r["lo"])
              else "interval not shown at this scale")
        lines.append(f"- {r['size']} ctx {r['context']} {r['precision']}: forward+backward takes "
                     f"{r['fwd_bwd_over_fwd']:.2f}x the forward time ({iv}; {int(r['rounds'])} "
                     f"rounds); the AdamW train step {r['train_over_fwd_bwd']:.2f}x "
                     f"forward+backward.")
    for _, r in wt.iterrows():
        iv = (f"95% CI [{r['lo_ms']:.1f}, {r['hi_ms']:.1f}] ms" if np.isfinite(r["lo_ms"])
              else "interval not shown at this scale")
        lines.append(f"- warm-up {r['warmups']}: mean step {r['mean_ms']:.1f} ms ({iv}; "
                     f"{r['repeats']} fresh processes), first step {r['first_step_ms']:.1f} ms.")
    return lines


def report(records: list[dict], outdir) -> None:
    outdir = Path(outdir)
    frame = records_frame(records)
    steps, pairs = _kind(frame, "step"), _kind(frame, "peer", "bf16")
    warm, attn, peak = _kind(frame, "warmup"), _kind(frame, "attn"), _kind(frame, "peak")
    modes = _kind(frame, "modes")
    everything = pd.concat([steps, pairs, modes, warm], ignore_index=True)
    if not everything.empty:
        write_table(params_table(everything), outdir, "num_params", floatfmt=".0f")
    mt, wt = pd.DataFrame(), pd.DataFrame()
    if not steps.empty:
        table = step_table(steps)
        write_table(table, outdir, "steps")
        plot_time_vs_context(table, outdir)
        plot_mfu(table, outdir)
    if not modes.empty:
        mt = modes_table(modes)
        write_table(mt, outdir, "fwd_vs_bwd")
        plot_fwd_bwd(mt[mt["status"] == "ok"], outdir)
    if not pairs.empty:
        pt = pair_table(pairs)
        write_table(pt, outdir, "pairs")
        plot_pairs(pt, outdir)
    if not warm.empty:
        wt = warmup_table(warm)
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
    claims = _claims(mt, wt) if len(mt) or len(wt) else []
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "README.md").write_text(NOTES + ("\n## Claims\n\n" + "\n".join(claims) + "\n"
                                               if claims else ""))


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
        ax.legend(fontsize=7, loc="upper left")
        ax.set_xscale("log", base=2)
        ax.set(yscale="log", xlabel="context length", ylabel="ms per step", title=mode)
        ticks = sorted(set(part["context"]))
        ax.set_xticks(ticks, [str(int(c)) for c in ticks])
        ax.set_xticks([], minor=True)
    save_figure(fig, outdir, "time_vs_context")


def plot_fwd_bwd(mt, outdir):
    if mt.empty:
        return
    fig, axes = new_figure(1, 2)
    ax1, ax2 = np.ravel(axes)
    labels = [f"{s}\n{int(c)} {p}" for s, c, p in zip(mt["size"], mt["context"],
                                                      mt["precision"], strict=True)]
    x = np.arange(len(mt))
    for k, (col, name) in enumerate((("forward_ms", "forward"),
                                     ("forward_backward_ms", "forward+backward"),
                                     ("train_step_ms", "train step (AdamW)"))):
        ax1.bar(x + 0.27 * (k - 1), mt[col], 0.27, label=name)
    ax1.set(ylabel="ms per step (median)", yscale="log", title="measured side by side")
    ax1.set_xticks(x, labels, fontsize=7)
    ax1.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.25), ncol=3)
    err = np.vstack([mt["fwd_bwd_over_fwd"] - mt["lo"], mt["hi"] - mt["fwd_bwd_over_fwd"]])
    ax2.bar(x, mt["fwd_bwd_over_fwd"], color="tab:green",
            yerr=np.nan_to_num(err), capsize=3)
    ax2.axhline(3.0, color="k", lw=0.8, ls="--", label="3x (FLOP ratio)")
    ax2.set(ylabel="forward+backward / forward", title="paired ratio, 95% CI")
    ax2.set_xticks(x, labels, fontsize=7)
    ax2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.25))
    save_figure(fig, outdir, "fwd_vs_fwd_bwd")


def plot_warmup(wt, outdir):
    fig, ax = new_figure(size=(6.5, 3.4))
    x = np.arange(len(wt))
    err = np.vstack([wt["mean_ms"] - wt["lo_ms"], wt["hi_ms"] - wt["mean_ms"]])
    ax.bar(x - 0.2, wt["mean_ms"], 0.4, yerr=np.nan_to_num(err), capsize=3,
           label="mean step (95% CI over\n>= 3 fresh processes)")
    ax.bar(x + 0.2, wt["first_step_ms"], 0.4, label="first step (cold)")
    ax.set_xticks(x, [str(int(w)) for w in wt["warmups"]])
    ax.set(xlabel="warm-up steps", ylabel="ms per step", title="warm-up effect")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    save_figure(fig, outdir, "warmup")


def plot_mfu(table, outdir):
    ok = table[(table["status"] == "ok") & table["mfu"].notna() & (table["attn"] == "sdpa")]
    if ok.empty:
        return
    extra = sorted(set(ok["size"]) - set(ORDER))  # a CLI run's own size label, after the known
    order = {**ORDER, **{s: len(ORDER) + i for i, s in enumerate(extra)}}
    fig, ax = new_figure(size=(7.5, 3.8))
    for (mode, prec, ctx), g in ok.groupby(["mode", "precision", "context"], sort=True):
        g = g.assign(o=g["size"].map(order)).sort_values("o").drop_duplicates("size")
        ax.plot(g["o"], g["mfu"], marker="o", label=f"{mode} {prec} ctx{int(ctx)}")
    sizes = sorted(set(ok["size"]), key=order.get)
    ax.set_xticks([order[s] for s in sizes], sizes)
    ax.set(xlabel="model size", ylabel="MFU (vs same-run matmul peak)", title="MFU by size")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1))
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
