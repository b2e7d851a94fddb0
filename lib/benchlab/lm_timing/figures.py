"""The figures of the transformer-timing report (report.py): time vs context, forward vs
forward+backward, warm-up, MFU by size, the pairs' ratios."""

import numpy as np

from benchlab.core.report import new_figure, save_figure

from .model import SIZES

ORDER = {name: i for i, name in enumerate(SIZES)}
MODE_ORDER = {"forward": 0, "forward_backward": 1, "train_step": 2}


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
            ax.plot(g["context"], g["median_ms"], marker="o", label=f"{size} {prec}")
        ax.legend(fontsize=7, loc="upper left")
        ax.set_xscale("log", base=2)
        ax.set(yscale="log", xlabel="context length", ylabel="ms per step (median)",
               title=mode)
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
    err = np.vstack([pt["estimate"] - pt["ci_lo"], pt["ci_hi"] - pt["estimate"]])
    ax.bar(x, pt["estimate"], color=colors, yerr=np.nan_to_num(err), capsize=3)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    labels = [f"{k}: {s} {int(c)}\n{a} / {b}" for k, s, c, a, b in
              zip(pt["kind"], pt["size"], pt["context"], pt["a"], pt["b"], strict=True)]
    ax.set_xticks(x, labels, fontsize=6, rotation=90)
    ax.set(ylabel="time a / b (paired median, 95% CI)",
           title="ours / HF LLaMA peer; bf16 / fp32")
    save_figure(fig, outdir, "peer_ratio")
