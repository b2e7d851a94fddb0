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
NEW_COLUMNS = {"prompt_id": "case.prompt", "prompt_kl": "prompt_kl"}  # benchlab's, per prompt
# held-out quality is one value per config (the whole held-out text), not per prompt: its own
# table, never a column of the prompt rows nor a paired test over prompts
HELDOUT = ("heldout_kl", "heldout_ppl", "heldout_avg_experts", "heldout_fill_in")
# paired over prompts vs topk_8: metric -> (the contender's better side, its verdict words)
TESTED = {"avg_experts_per_token": ("below", ("smaller", "larger")),
          "inference_time_sec": ("below", ("faster", "slower")),
          "tokens_per_sec": ("above", ("faster", "slower")),
          "expert_utilization_cv": ("below", ("smaller", "larger")),
          "prompt_kl": ("below", ("smaller", "larger"))}
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
    from .harness import PROMPTS

    return next((p.text for p in PROMPTS if p.id == pid), "")


def analysis(seed: pd.DataFrame) -> dict:
    """Per config: means over prompts, and each TESTED metric against topk_8 paired over prompts
    (the unit: one generation each): stats.compare_paired, Holm over the configs of a metric
    (stats.family), verdict columns; Cohen's d only where topk_8's values vary (against a
    constant, such as its 8 experts, it measures nothing)."""
    out = {}
    base = seed[seed.config_name == BASELINE].set_index("prompt_id")
    for name, grp in seed.groupby("config_name", sort=False):
        g = grp.set_index("prompt_id")
        out[name] = {"n_prompts": int(len(g)),
                     "means": {m: float(g[m].mean()) for m in TESTED if m in g},
                     "by_category": {c: float(g[g.prompt_category == c]
                                              .avg_experts_per_token.mean())
                                     for c in CATEGORIES if (g.prompt_category == c).any()}}
    if not len(base):
        return out
    for m, (better, words) in TESTED.items():
        rows = []
        for name, grp in seed.groupby("config_name", sort=False):
            g = grp.set_index("prompt_id")
            common = g.index.intersection(base.index)
            if name == BASELINE or m not in g or len(common) < 2:
                continue
            a, b = g.loc[common, m].astype(float), base.loc[common, m].astype(float)
            t = stats.compare_paired(a.values, b.values)
            if not np.isfinite(t["p"]):
                continue  # equal differences on every prompt (bh_naive's 1 - 8): no test
            rows.append({**t, "config": name, "metric": m, "cohens_d": stats.cohens_d_paired(
                a, b) if b.std() > 0 else float("nan")})
        for row in stats.family(rows, better=better, words=words):
            out[row["config"]].setdefault("vs_topk_8", {})[m] = row
    return out


def versus_table(configs: dict) -> pd.DataFrame:
    """The paired tests over prompts as one table (verdict columns; claims-checkable)."""
    cols = ("config", "metric", *stats.VERDICT_COLUMNS, "cohens_d")
    rows = [{k: t[k] for k in cols} for e in configs.values()
            for t in e.get("vs_topk_8", {}).values()]
    return pd.DataFrame(rows, columns=cols)


def heldout_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Held-out quality per config: one row each (the same value sits in every prompt's
    record, as it is measured once per config on the whole held-out text)."""
    if "case.kind" not in frame or "heldout_kl" not in frame:
        return pd.DataFrame()
    gen = frame[frame["case.kind"] == "generate"].drop_duplicates("case.routing")
    cols = {"config_name": gen["case.routing"], **{k: gen[k] for k in HELDOUT if k in gen}}
    known = list(ROUTINGS)
    out = pd.DataFrame(cols)
    return out.sort_values("config_name", key=lambda s: s.map(
        lambda n: known.index(n) if n in known else len(known)), kind="stable").reset_index(
        drop=True)


def alpha_sweep(configs: dict, heldout: pd.DataFrame) -> dict:
    """Calibrated BH (per-expert null, temperature 1), by alpha: experts used and the quality
    paid for them; `monotone` (held-out experts non-decreasing in alpha) only from two alphas
    or more, else None (not shown)."""
    rows = []
    q = heldout.set_index("config_name") if len(heldout) else pd.DataFrame()
    for name, entry in configs.items():
        r = ROUTINGS.get(name) if name in ROUTINGS else None
        if r is None or r.method != "bh" or r.null != "per_expert" or r.temperature != 1:
            continue
        h = q.loc[name] if name in q.index else {}
        rows.append({"config": name, "alpha": r.alpha,
                     "avg_experts": entry["means"].get("avg_experts_per_token"),
                     **{k: (float(h[k]) if k in h else None) for k in (
                         "heldout_avg_experts", "heldout_kl", "heldout_ppl")}})
    rows.sort(key=lambda r: r["alpha"])
    counts = [r["heldout_avg_experts"] for r in rows]
    ok = None not in counts and len(counts) >= 2
    monotone = all(a <= b for a, b in zip(counts, counts[1:], strict=False)) if ok else None
    return {"rows": rows, "monotone": monotone, "alphas": [r["alpha"] for r in rows]}


# case kind -> (its entry in the speed summary, the record fields kept)
SPEED_FIELDS = {
    "router": ("router_cost", ("ratio_vs_topk_router", "ratio_vs_topk_router_ci",
                               "ratio_vs_torch_topk", "router_time", "mean_selected")),
    "model_router": ("model_router_cost", ("model_router_ratio", "model_router_ratio_ci",
                                           "model_router_time", "model_topk_router_time")),
    "forward": ("forward_equal_count", (
        "forward_ratio", "forward_ratio_ci", "mean_experts", "bh_forward_time",
        "topk_forward_time", "model_router_ratio", "router_overhead", "bh_active_experts",
        "topk_active_experts", "bh_util_cv", "topk_util_cv", "topk_lo")),
    "layer_equal": ("layer_equal_count", ("layer_ratio", "layer_ratio_ci", "mean_experts")),
}


def speed_summary(frame: pd.DataFrame) -> dict:
    out = {}
    if "case.kind" not in frame:
        return out
    for kind, (entry, fields) in SPEED_FIELDS.items():
        for _, row in frame[frame["case.kind"] == kind].iterrows():
            key = row["case.routing"]
            if kind == "layer_equal":
                key = (key, *(int(row[f"case.{k}"]) for k in ("hidden", "intermediate", "tokens")))
            out.setdefault(entry, {})[key] = {k: row[k] for k in fields if k in row}
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


def plots(seed: pd.DataFrame, speed: dict, heldout: pd.DataFrame, outdir: Path) -> list[str]:
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
    if {"heldout_kl", "heldout_avg_experts", "heldout_ppl"} <= set(heldout):  # one per config
        fig, ax = new_figure(size=(5.5, 4))
        for _, row in heldout.iterrows():
            n = row.config_name
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


def _ci(ci, sep: str = "") -> str:
    return f"95% CI {ci[0]:.3g}-{ci[1]:.3g}{sep}" if ci is not None else ""


def speed_lines(speed: dict) -> list[str]:
    """REPORT.md's speed section: each ratio beside its goal (all of analysis_summary.json)."""
    lines = ["## Speed (ratios of rounds timed side by side in one run)", "",
             "| measure | config | ratio | goal | detail |", "|---|---|---|---|---|"]
    for name, r in speed.get("router_cost", {}).items():
        lines.append(f"| router vs top-k router, Gaussian logits | {name} | "
                     f"{r['ratio_vs_topk_router']:.3g} | <= 1.5 | "
                     f"{_ci(r.get('ratio_vs_topk_router_ci'), '; ')}vs bare torch.topk "
                     f"{r['ratio_vs_torch_topk']:.3g} |")
    for name, r in speed.get("model_router_cost", {}).items():
        lines.append(f"| router vs top-8 router, the model's held-out logits (all layers) | "
                     f"{name} | {r['model_router_ratio']:.3g} | <= 1.0 | "
                     f"{_ci(r['model_router_ratio_ci'])} |")
    for name, r in speed.get("forward_equal_count", {}).items():
        lines.append(f"| forward vs top-k at {r['mean_experts']:.3g} experts/token | {name} | "
                     f"{r['forward_ratio']:.3g} | <= 1.05 | {_ci(r.get('forward_ratio_ci'), '; ')}"
                     "router on the model's logits "
                     f"{r.get('model_router_ratio', float('nan')):.3g}x the top-8 router; "
                     "against the routers of the compared top-k forwards it adds "
                     f"{100 * r.get('router_overhead', float('nan')):.2g}% of the forward"
                     f"{load(r)} |")
    for (name, h, i, t), r in speed.get("layer_equal_count", {}).items():
        lines.append(f"| one MoE layer ({h} x {i} experts, {t} tokens) vs top-k at "
                     f"{r['mean_experts']:.3g} experts/token | {name} | {r['layer_ratio']:.3g} | "
                     f"<= 1.05 | {_ci(r['layer_ratio_ci'])} |")
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
        heldout = heldout_table(frame)
        summary["alpha_sweep"] = alpha_sweep(summary["configs"], heldout)
        figs = plots(seed, speed, heldout, outdir)
        tests = versus_table(summary["configs"])
        write_table(tests, outdir, "prompts_vs_topk_8")
        lines += ["## Mean per configuration (over prompts)", "",
                  table.to_markdown(index=False, floatfmt=".4g"), "",
                  "## Paired tests vs topk_8 (over prompts)", "",
                  "Unit: the prompt (one generation each). estimate = mean over prompts of config "
                  "- topk_8; p: paired t-test over prompts; p_holm: Holm over the configs of one "
                  "metric; verdict words from the interval and p_holm (core.stats.verdict). "
                  "Cohen's d is left empty where topk_8's values do not vary (its 8 experts); a "
                  "metric whose difference is the same on every prompt is not tested.", "",
                  tests.to_markdown(index=False, floatfmt=".4g"), ""]
        if not heldout.empty:
            write_table(heldout, outdir, "heldout_by_config")
            lines += ["## Held-out quality per configuration (zoo corpus val)", "",
                      "One value per config on the whole held-out text (not per prompt; its "
                      "intervals and tests over sequences are the frontier study's, "
                      "frontier/FRONTIER.md).", "",
                      heldout.to_markdown(index=False, floatfmt=".4g"), ""]
        sweep = summary["alpha_sweep"]
        lines += ["## Calibrated BH: experts and quality cost by alpha (temperature 1)", "",
                  "| config | alpha | experts/token (prompts) | experts/token (held-out) | "
                  "held-out KL | held-out ppl |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['config']} | {r['alpha']} | {_fmt(r['avg_experts'])} | "
                  f"{_fmt(r['heldout_avg_experts'])} | {_fmt(r['heldout_kl'])} | "
                  f"{_fmt(r['heldout_ppl'])} |" for r in sweep["rows"]]
        lines += ["", (f"Mean held-out experts monotone in alpha (over alphas "
                       f"{', '.join(f'{a:g}' for a in sweep['alphas'])}): {sweep['monotone']}"
                       if sweep["monotone"] is not None else
                       "Mean experts monotone in alpha: not shown (fewer than two alphas).")]
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
