"""FRONTIER.md, its tables and figure from the frontier study's rows (same rows -> same bytes)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.provenance import to_jsonable
from ..core.report import new_figure, save_figure, write_table
from .nulls import NULLS

WHY = (
    "Why BH falls short where it does (an interpretation of the tables below, not a separate "
    "test): the per-expert null ranks an expert by how unusual its logit is for that expert, so "
    "at low alpha most token-layers select nothing and the one expert kept by min_k is the "
    "router's own top choice only in a minority of them (fill-in is top-1, below): it is worse "
    "than top-k at every count. The pooled, within-token and probability nulls keep a prefix of "
    "the router's ranking (fill-in is top-1 always), so BH only decides how many experts a token "
    "gets, from how extreme its scores are against the calibration tokens; that spends extra "
    "experts on tokens with unusually large scores, which pays off only near one expert per "
    "token (within_token), while top-k's equal count wins once most tokens get two or more. "
    "bh_prob_t2 also mixes with softmax(x / 2) weights and the renormalized rules with weights "
    "summing to 1, so their KL from topk_8 (which does neither) stays high even at 8 experts: "
    "they change the model, not only the experts; compare them by perplexity.")


def _ci(v) -> str:
    return f"{v[0]:.4g}-{v[1]:.4g}"


def frontier_report(rows: list[dict], tests: list[dict], drift: dict, sentence: str,
                    meta: dict, outdir) -> list[Path]:
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame([{
        "rule": r["rule"], "family": r["family"], "param": r["param"], "null": r["null"],
        "experts": r["experts"], "experts 95% CI": _ci(r["experts_ci"]), "KL": r["kl"],
        "KL 95% CI": _ci(r["kl_ci"]), "ppl": r["ppl"], "ppl 95% CI": _ci(r["ppl_ci"]),
        "fill-in share": r.get("fill_in", np.nan),
        "fill-in is top-1": r.get("fill_in_top", np.nan)} for r in rows])
    paths = write_table(table, outdir, "frontier")
    vs = pd.DataFrame([{
        "rule": t["rule"], "experts": t["experts"], "KL": t["kl"], "top-k KL": t["topk_kl"],
        "top-k KL 95% CI": _ci(t["topk_kl_ci"]), "KL diff": t["kl_diff"],
        "diff 95% CI": _ci(t["kl_diff_ci"]), "t": t["t"], "p": t["p"],
        "NLL diff": t["nll_diff"], "verdict": t["verdict"]} for t in tests])
    paths += write_table(vs, outdir, "versus_topk")
    drift_rows, fill_rows = [], []
    for rule, d in drift.items():
        for i, (b, a) in enumerate(zip(d["p_below_before"], d["p_below_after"], strict=True)):
            drift_rows.append({"rule": rule, "layer": i, "P(p<=alpha) under top-8 null": b,
                               "P(p<=alpha) under own-routing null": a,
                               "fill-in, top-8 null": d["fill_in_before"][i],
                               "fill-in, own null": d["fill_in_after"][i]})
    for r in rows:
        if "fill_in_by_layer" in r:
            fill_rows.append({"rule": r["rule"], **{f"layer {i}": v for i, v in
                                                    enumerate(r["fill_in_by_layer"])}})
    paths += write_table(pd.DataFrame(drift_rows), outdir, "null_drift")
    paths += write_table(pd.DataFrame(fill_rows), outdir, "fill_in_by_layer")
    paths.append(_figure(rows, outdir))
    alpha = meta.get("drift_alpha")
    n_tok = meta.get("heldout") or 1
    drift_text = []
    for rule, d in drift.items():  # layers >= 1 are the ones the routing below can shift
        b, a = d["p_below_before"][1:], d["p_below_after"][1:]
        se = (alpha * (1 - alpha) / (n_tok * meta.get("experts", 64))) ** 0.5 if alpha else 0
        drift_text.append(
            f"- {rule}: P(p <= {alpha}) in layers 1+ is {min(b):.3f}-{max(b):.3f} with the null "
            f"calibrated under top-8 and {min(a):.3f}-{max(a):.3f} with the null calibrated under "
            f"the rule itself (an exact null gives {alpha}; binomial s.e. if (token, expert) pairs "
            f"were independent {se:.4f}, so only departures well beyond it count).")
    lines = [
        "# MoE routing: the quality/compute frontier on held-out text", "",
        f"Model {meta.get('model')} (digest {meta.get('model_digest')}), {meta.get('heldout')} "
        f"held-out tokens (zoo corpus val), {meta.get('calib')} calibration tokens (zoo corpus "
        "train). Quality: mean per-token KL(topk_8 || rule) of the next-token distribution and "
        "perplexity; compute: experts per token (mean over layers). 95% percentile bootstrap "
        f"intervals over tokens ({meta.get('bootstrap')} resamples). Baseline: top-k, k = 1..8.",
        "", "**Verdict.** " + sentence, "", WHY, "",
        "p-value definitions (every BH rule's null is calibrated under that rule itself):", ""]
    lines += [f"- `{d}`: {NULLS.get(d).summary}" for d in NULLS]
    lines += ["", "![frontier](frontier.png)", "", "## All rules", "",
              table.to_markdown(index=False, floatfmt=".4g"), "",
              "## Each rule vs top-k at its own mean expert count", "",
              "Top-k interpolated token by token between floor and ceil of the rule's mean "
              "count; KL diff = rule - top-k (negative: the rule is better); paired t-test over "
              "tokens (tokens of one sequence are not independent, so p is optimistic; the "
              "verdict uses the bootstrap interval).", "",
              vs.to_markdown(index=False, floatfmt=".4g"), "",
              f"## The null under the routing tested (alpha {alpha})", "", *drift_text, "",
              "P(p <= alpha) per layer on held-out tokens routed by the rule, with the rule's "
              "null calibrated under top-8 (before) and under the rule itself (after); an exact "
              "null gives alpha. Fill-in: share of token-layers where BH selected nothing and "
              "min_k = 1 filled in.", "",
              pd.DataFrame(drift_rows).to_markdown(index=False, floatfmt=".4g"), "",
              "## min_k fill-in share per layer", "",
              pd.DataFrame(fill_rows).to_markdown(index=False, floatfmt=".3g"), ""]
    (outdir / "FRONTIER.md").write_text("\n".join(lines) + "\n")
    (outdir / "frontier_summary.json").write_text(json.dumps(to_jsonable(
        {"meta": meta, "sentence": sentence, "rows": rows, "versus_topk": tests,
         "drift": drift}), indent=1, sort_keys=True) + "\n")
    return paths + [outdir / "FRONTIER.md", outdir / "frontier_summary.json"]


def _figure(rows: list[dict], outdir: Path) -> Path:
    fig, axes = new_figure(1, 2, size=(11, 4.2))
    a1, a2 = axes[0]
    fams = list(dict.fromkeys(r["family"] for r in rows))
    for f in fams:
        rs = sorted((r for r in rows if r["family"] == f), key=lambda r: r["experts"])
        x = np.array([r["experts"] for r in rs])
        style = dict(marker="o", ms=3, capsize=2, lw=2.2 if f == "topk" else 1,
                     color="black" if f == "topk" else None)
        for ax, key in ((a1, "kl"), (a2, "ppl")):
            y = np.array([r[key] for r in rs])
            ci = np.array([r[f"{key}_ci"] for r in rs])
            ax.errorbar(x, y, yerr=[y - ci[:, 0], ci[:, 1] - y], label=f, **style)
    a1.set_yscale("log")
    a1.set_ylabel("held-out KL from topk_8 (nats/token)")
    a2.set_ylabel("held-out perplexity")
    for ax in (a1, a2):
        ax.set_xlabel("experts per token (mean)")
    a1.legend(fontsize=7)
    return save_figure(fig, outdir, "frontier")
