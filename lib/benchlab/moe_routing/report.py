"""The MoE-routing report: seed CSV, statistics vs topk_8, plots, REPORT.md, experiment log.

Depends only on the records (same records -> same bytes):

    benchlab report /tmp/moe/store.jsonl --outdir /tmp/moe/reports
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..core import stats
from ..core.provenance import to_jsonable
from ..core.report import new_figure, records_frame, save_figure, write_table
from .routers import ROUTINGS

BASELINE = "topk_8"
CATEGORIES = ("simple", "medium", "complex", "domain")
SEED_COLUMNS = {  # the seed's 14 CSV columns, in its order <- record column
    "config_name": "case.routing", "prompt_category": "case.category",
    "prompt_text": "prompt_text", "avg_experts_per_token": "avg_experts",
    "std_experts_per_token": "std_experts", "min_experts": "min_experts",
    "max_experts": "max_experts", "inference_time_sec": "inference_time",
    "tokens_per_sec": "tokens_per_second", "expert_utilization_cv": "util_cv",
    "expert_utilization_max_min_ratio": "util_max_min_ratio",
    "num_input_tokens": "input_tokens", "num_output_tokens": "output_tokens",
    "generated_text": "generated_text",
}
NEW_COLUMNS = {  # benchlab's, after the seed's
    "prompt_id": "case.prompt", "heldout_kl": "heldout_kl", "heldout_ppl": "heldout_ppl",
    "prompt_kl": "prompt_kl", "heldout_avg_experts": "heldout_avg_experts",
    "heldout_fill_in": "heldout_fill_in",
}
TESTED = ("avg_experts_per_token", "inference_time_sec", "tokens_per_sec",
          "expert_utilization_cv", "prompt_kl")
NULL_DEFINITION = (
    "Calibrated p-values: p = (1 + #{z >= s}) / (n + 1), where s is the token's score for an "
    "expert at layer l and z are the n calibration scores of that layer's null (zoo corpus, "
    "train split), calibrated under the routing tested (layers below l routed by the same rule) "
    "and stored with the run (nulls/). Definitions (the config's `null`): per_expert (bh_strict, "
    "bh_moderate, bh_loose: the logit against that expert's own logits; BH selects at least one "
    "expert only when N + 1 > E / alpha), pooled (bh_pooled: the logit against all experts' "
    "logits of the layer, so BH keeps a prefix of the router's ranking), within_token "
    "(bh_within: (logit - median) / MAD of the token's logits, pooled), prob (bh_adaptive: "
    "softmax(logits / 2), pooled, so the temperature changes the selection). The naive p = 1 - "
    "softmax probability (bh_naive) can never select more than one expert: at most one "
    "probability exceeds 1/2. Renormalized configs (*_renorm) divide the mixing weights by "
    "their sum over the selection (norm_topk_prob).")


def seed_frame(frame: pd.DataFrame) -> pd.DataFrame:
    gen = frame[frame.get("case.kind") == "generate"] if "case.kind" in frame else frame.iloc[:0]
    gen = gen.assign(prompt_text=gen["case.prompt"].map(_prompt_text)) if len(gen) else gen
    cols = {k: gen[v] for k, v in {**SEED_COLUMNS, **NEW_COLUMNS}.items() if v in gen}
    out = pd.DataFrame(cols)
    if out.empty:
        return out
    known = list(ROUTINGS)  # the registry's order: topk_8 first, the naive BH last
    order = {r: i for i, r in enumerate(known + sorted(set(out["config_name"]) - set(known)))}
    return out.sort_values(["config_name", "prompt_id"], key=lambda s: s.map(order)
                           if s.name == "config_name" else s, kind="stable").reset_index(drop=True)


def _prompt_text(pid: str) -> str:
    from .experiment import PROMPTS

    return next((p.text for p in PROMPTS if p.id == pid), "")


def analysis(seed: pd.DataFrame) -> dict:
    """Per config: means, and paired t-test + paired Cohen's d vs topk_8 over prompts."""
    out = {}
    base = seed[seed.config_name == BASELINE].set_index("prompt_id")
    for name, grp in seed.groupby("config_name", sort=False):
        g = grp.set_index("prompt_id")
        entry = {"n_prompts": int(len(g)),
                 "means": {m: float(g[m].mean()) for m in TESTED + (
                     "heldout_kl", "heldout_ppl", "heldout_avg_experts", "heldout_fill_in")
                     if m in g}}
        if name != BASELINE and len(base):
            common = g.index.intersection(base.index)
            tests = {}
            for m in TESTED:
                if m not in g or len(common) < 2:
                    continue
                a, b = g.loc[common, m].astype(float), base.loc[common, m].astype(float)
                t, p = stats.paired_ttest(a, b) if (a - b).std() > 0 else (float("nan"),) * 2
                tests[m] = {"t": t, "p": p, "cohens_d": stats.cohens_d_paired(a, b),
                            "mean_diff": float((a - b).mean())}
            entry["vs_topk_8"] = tests
        entry["by_category"] = {c: float(g[g.prompt_category == c].avg_experts_per_token.mean())
                                for c in CATEGORIES if (g.prompt_category == c).any()}
        out[name] = entry
    return out


def alpha_sweep(configs: dict) -> dict:
    """Calibrated BH at temperature 1, by alpha: experts used and the quality paid for them."""
    rows = []
    for name, entry in configs.items():
        r = ROUTINGS.get(name) if name in ROUTINGS else None
        if r is None or r.method != "bh" or r.null != "per_expert" or r.temperature != 1:
            continue
        m = entry["means"]
        rows.append({"config": name, "alpha": r.alpha,
                     "avg_experts": m.get("avg_experts_per_token"),
                     "heldout_avg_experts": m.get("heldout_avg_experts"),
                     "heldout_kl": m.get("heldout_kl"), "heldout_ppl": m.get("heldout_ppl")})
    rows.sort(key=lambda r: r["alpha"])
    counts = [r["heldout_avg_experts"] for r in rows]
    ok = None not in counts
    monotone = all(a <= b for a, b in zip(counts, counts[1:], strict=False)) if ok else None
    return {"rows": rows, "monotone": monotone}


def speed_summary(frame: pd.DataFrame) -> dict:
    out = {}
    if "case.kind" not in frame:
        return out
    for _, row in frame[frame["case.kind"] == "router"].iterrows():
        out.setdefault("router_cost", {})[row["case.routing"]] = {
            k: row[k] for k in ("ratio_vs_topk_router", "ratio_vs_topk_router_ci",
                                "ratio_vs_torch_topk", "router_time", "mean_selected")
            if k in row}
    for _, row in frame[frame["case.kind"] == "forward"].iterrows():
        out.setdefault("forward_equal_count", {})[row["case.routing"]] = {
            k: row[k] for k in ("forward_ratio", "forward_ratio_ci", "mean_experts",
                                "bh_forward_time", "topk_forward_time", "model_router_ratio",
                                "router_overhead", "bh_active_experts", "topk_active_experts",
                                "bh_util_cv", "topk_util_cv", "topk_lo") if k in row}
    for _, row in frame[frame["case.kind"] == "layer_equal"].iterrows():
        key = (row["case.routing"], *(int(row[f"case.{k}"]) for k in ("hidden", "intermediate",
                                                                      "tokens")))
        out.setdefault("layer_equal_count", {})[key] = {
            k: row[k] for k in ("layer_ratio", "layer_ratio_ci", "mean_experts") if k in row}
    for _, row in frame[frame["case.kind"] == "layer"].iterrows():
        out["layer_scaling"] = {k: row[k] for k in ("ks", "layer_times", "relative_times",
                                                    "time_per_expert_slope") if k in row}
    return out


def _seed_plot(fig, outdir: Path, name: str) -> str:
    """The seed's five plots go under plots/ by the seed's names: avg_experts_comparison,
    inference_time_comparison, expert_utilization_cv, experts_by_category, experts_vs_latency."""
    save_figure(fig, outdir / "plots", name)
    return f"plots/{name}.png"


def fill_in_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Share of held-out token-layers where BH selected nothing and min_k filled in, per config
    and layer (one row per calibrated BH config)."""
    col = "heldout_fill_in_by_layer"
    if col not in frame or "case.kind" not in frame:
        return pd.DataFrame()
    rows = {}
    for _, r in frame[frame["case.kind"] == "generate"].iterrows():
        v = r[col]
        if isinstance(v, list) and r["case.routing"] not in rows:
            rows[r["case.routing"]] = {"config_name": r["case.routing"],
                                       **{f"layer {i}": x for i, x in enumerate(v)},
                                       "mean": float(np.mean(v))}
    return pd.DataFrame(list(rows.values()))


def frontier_slice(frame: pd.DataFrame) -> pd.DataFrame:
    """The tiny bench's slice of the frontier study: one row per rule."""
    if "case.kind" not in frame:
        return pd.DataFrame()
    rows = []
    for _, r in frame[frame["case.kind"] == "frontier"].iterrows():
        for col in sorted(c for c in r.index if c.startswith("experts_") and pd.notna(r[c])):
            name = col[len("experts_"):]
            rows.append({"rule": name, "experts": r[col], "KL": r.get(f"kl_{name}"),
                         "ppl": r.get(f"ppl_{name}"), "fill-in": r.get(f"fill_in_{name}"),
                         "KL - top-k at equal count": r.get(f"kl_diff_{name}")})
    return pd.DataFrame(rows)


def plots(seed: pd.DataFrame, speed: dict, outdir: Path) -> list[str]:
    names = list(seed.config_name.drop_duplicates())
    agg = seed.groupby("config_name", sort=False)
    made = []

    def bar(metric, ylabel, fname):
        fig, ax = new_figure(size=(7, 3.6))
        m, s = agg[metric].mean().reindex(names), agg[metric].std().reindex(names).fillna(0)
        ax.bar(range(len(names)), m.values, yerr=s.values, color="tab:blue", capsize=3)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_ylabel(ylabel)
        made.append(_seed_plot(fig, outdir, fname))

    bar("avg_experts_per_token", "experts per token (mean)", "avg_experts_comparison")
    bar("inference_time_sec", "generation time (s)", "inference_time_comparison")
    bar("expert_utilization_cv", "expert utilization CV", "expert_utilization_cv")
    fig, ax = new_figure(size=(7, 3.6))
    width = 0.8 / len(CATEGORIES)
    for i, c in enumerate(CATEGORIES):
        vals = [seed[(seed.config_name == n)
                     & (seed.prompt_category == c)].avg_experts_per_token.mean()
                for n in names]
        ax.bar(np.arange(len(names)) + i * width, vals, width, label=c)
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, rotation=30, ha="right")
    ax.set_ylabel("experts per token")
    ax.legend(fontsize=7)
    made.append(_seed_plot(fig, outdir, "experts_by_category"))
    fig, ax = new_figure(size=(5.5, 4))
    for n in names:
        g = seed[seed.config_name == n]
        ax.scatter(g["inference_time_sec"], g.avg_experts_per_token, label=n, s=18)
    ax.set_xlabel("generation time (s)")
    ax.set_ylabel("experts per token")
    ax.legend(fontsize=7)
    made.append(_seed_plot(fig, outdir, "experts_vs_latency"))
    if {"heldout_kl", "heldout_avg_experts"} <= set(seed):  # one point per config, held-out text
        fig, ax = new_figure(size=(5.5, 4))
        q = agg[["heldout_kl", "heldout_avg_experts", "heldout_ppl"]].mean().reindex(names)
        for n, row in q.iterrows():
            ax.scatter(row.heldout_kl, row.heldout_avg_experts, s=30)
            ax.annotate(f"{n} (ppl {row.heldout_ppl:.0f})", (row.heldout_kl,
                        row.heldout_avg_experts), fontsize=7, xytext=(4, 2),
                        textcoords="offset points")
        ax.set_xlabel("KL from topk_8 on held-out text (nats/token)")
        ax.set_ylabel("experts per token (held-out)")
        made.append(save_figure(fig, outdir, "experts_vs_quality").name)
    if "layer_scaling" in speed:
        ls = speed["layer_scaling"]
        fig, ax = new_figure(size=(4.5, 3.6))
        ks = np.array(ls["ks"], float)
        ax.plot(ks / ks.max(), ls["relative_times"], "o-", label="measured")
        ax.plot([0, 1], [0, 1], "--", color="gray", label="proportional")
        ax.set_xlabel("experts used / 8")
        ax.set_ylabel("MoE layer time / time at 8")
        ax.legend(fontsize=7)
        made.append(save_figure(fig, outdir, "layer_scaling").name)
    return made


def load(r: dict) -> str:
    """The expert load beside a forward ratio: experts with rows and the CV of rows per expert
    (mean over layers), BH against top-k at floor(mean)."""
    if "bh_util_cv" not in r:
        return ""
    return (f"; experts with rows {r['bh_active_experts']:.3g} (top-{r['topk_lo']:.0f}: "
            f"{r['topk_active_experts']:.3g}), rows-per-expert CV {r['bh_util_cv']:.2g} "
            f"(top-{r['topk_lo']:.0f}: {r['topk_util_cv']:.2g})")


def speed_lines(speed: dict) -> list[str]:
    """REPORT.md's speed section: each ratio beside its goal (all of analysis_summary.json)."""
    lines = ["## Speed (ratios of rounds timed side by side in one run)", "",
             "| measure | config | ratio | goal | detail |", "|---|---|---|---|---|"]
    for name, r in speed.get("router_cost", {}).items():
        ci = r.get("ratio_vs_topk_router_ci")
        ci = f"95% CI {ci[0]:.3g}-{ci[1]:.3g}; " if ci is not None else ""
        lines.append(f"| router vs top-k router, Gaussian logits | {name} | "
                     f"{r['ratio_vs_topk_router']:.3g} | <= 1.5 | "
                     f"{ci}vs bare torch.topk {r['ratio_vs_torch_topk']:.3g} |")
    for name, r in speed.get("forward_equal_count", {}).items():
        ci = r.get("forward_ratio_ci")
        ci = f"95% CI {ci[0]:.3g}-{ci[1]:.3g}; " if ci is not None else ""
        lines.append(f"| forward vs top-k at {r['mean_experts']:.3g} experts/token | {name} | "
                     f"{r['forward_ratio']:.3g} | <= 1.05 | {ci}router on the model's logits "
                     f"{r.get('model_router_ratio', float('nan')):.3g}x the top-8 router; "
                     "against the routers of the compared top-k forwards it adds "
                     f"{100 * r.get('router_overhead', float('nan')):.2g}% of the forward"
                     f"{load(r)} |")
    for (name, h, i, t), r in speed.get("layer_equal_count", {}).items():
        lo, hi = r["layer_ratio_ci"]
        lines.append(f"| one MoE layer ({h} x {i} experts, {t} tokens) vs top-k at "
                     f"{r['mean_experts']:.3g} experts/token | {name} | {r['layer_ratio']:.3g} | "
                     f"<= 1.05 | 95% CI {lo:.3g}-{hi:.3g} |")
    if "layer_scaling" in speed:
        ls = speed["layer_scaling"]
        lines.append(f"| MoE-layer time slope vs experts used | top-k {ls['ks']} | "
                     f"{ls['time_per_expert_slope']:.3g} | >= 0.8 | relative times "
                     f"{', '.join(f'{t:.2f}' for t in ls['relative_times'])} |")
    return lines + [""]


def _fmt(x) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def report(records: list[dict], outdir: Path) -> None:
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    frame = records_frame(records)
    seed = seed_frame(frame)
    speed = speed_summary(frame)
    summary = {"null_definition": NULL_DEFINITION, "baseline": BASELINE, "speed": speed}
    lines = ["# MoE routing: BH vs top-k on OLMoE", "", NULL_DEFINITION, ""]
    if not seed.empty:
        seed.to_csv(outdir / "bh_routing_results.csv", index=False, float_format="%.6g",
                    lineterminator="\n")
        summary["configs"] = analysis(seed)
        table = seed.drop(columns=["generated_text"]).groupby("config_name", sort=False).mean(
            numeric_only=True).reset_index()
        write_table(table, outdir, "summary_by_config")
        cat = seed.pivot_table(index="config_name", columns="prompt_category",
                               values="avg_experts_per_token", sort=False).reset_index()
        write_table(cat, outdir, "experts_by_category")
        summary["alpha_sweep"] = alpha_sweep(summary["configs"])
        figs = plots(seed, speed, outdir)
        lines += ["## Mean per configuration (over prompts)", "",
                  table.to_markdown(index=False, floatfmt=".4g"), "",
                  "## Paired tests vs topk_8 (over prompts)", "",
                  "| config | metric | mean diff | t | p | Cohen's d |",
                  "|---|---|---|---|---|---|"]
        for name, entry in summary["configs"].items():
            for m, t in entry.get("vs_topk_8", {}).items():
                lines.append(f"| {name} | {m} | {_fmt(t['mean_diff'])} | {_fmt(t['t'])} | "
                             f"{_fmt(t['p'])} | {_fmt(t['cohens_d'])} |")
        sweep = summary["alpha_sweep"]
        lines += ["", "## Calibrated BH: experts and quality cost by alpha (temperature 1)", "",
                  "| config | alpha | experts/token (prompts) | experts/token (held-out) | "
                  "held-out KL | held-out ppl |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['config']} | {r['alpha']} | {_fmt(r['avg_experts'])} | "
                  f"{_fmt(r['heldout_avg_experts'])} | {_fmt(r['heldout_kl'])} | "
                  f"{_fmt(r['heldout_ppl'])} |" for r in sweep["rows"]]
        lines += ["", f"Mean experts monotone in alpha: {sweep['monotone']}"]
        fills = fill_in_table(frame)
        if not fills.empty:
            write_table(fills, outdir, "fill_in_by_layer")
            lines += ["", "## min_k fill-in share (held-out token-layers where BH selected "
                      "nothing and the one expert kept is the fill-in)", "",
                      fills.to_markdown(index=False, floatfmt=".3g")]
        lines += ["", "## Experts per token by category", "",
                  cat.to_markdown(index=False, floatfmt=".3g"), ""]
        lines += [f"![{f[:-4]}]({f})" for f in figs] + [""]
    fs = frontier_slice(frame)
    if not fs.empty:
        summary["frontier_slice"] = fs.to_dict("records")
        lines += ["## Frontier slice (held-out text; the full study: frontier/FRONTIER.md, "
                  "`benchlab moe-routing frontier`)", "",
                  fs.to_markdown(index=False, floatfmt=".4g"), ""]
    if speed:
        lines += speed_lines(speed)
    (outdir / "analysis_summary.json").write_text(
        json.dumps(to_jsonable(summary), indent=1, sort_keys=True) + "\n")
    (outdir / "REPORT.md").write_text("\n".join(lines) + "\n")
