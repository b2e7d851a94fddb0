"""FRONTIER.md, its tables and figure from the frontier study's rows (same rows -> same bytes)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..core import stats
from ..core.provenance import to_jsonable
from ..core.report import new_figure, save_figure, write_table
from .nulls import NULLS

WHY = (
    "How the rules differ (mechanism, not a test; the verdicts are the tables'): the per-expert "
    "null ranks an expert by how unusual its logit is for that expert, so at low alpha most "
    "token-layers select nothing and the one expert kept by min_k is the router's own top choice "
    "only in a minority of them (fill-in is top-1, below). The pooled, within-token and "
    "probability nulls keep a prefix of the router's ranking (fill-in is top-1 always), so BH "
    "only decides how many experts a token gets, from how extreme its scores are against the "
    "calibration tokens; the fixed threshold on the within-token null decides the same with one "
    "cutoff per layer instead of the step-up. bh_prob_t2 also mixes with softmax(x / 2) weights "
    "and the renormalized rules with weights summing to 1, so their KL from topk_8 (which does "
    "neither) stays high even at 8 experts: they change the model, not only the experts.")


def _ci(v) -> str:
    return f"{v[0]:.4g}-{v[1]:.4g}"


# the columns of every verdict table (a claims check recomputes each verdict from its own row)
TEST_COLUMNS = ("rule", "family", "param", "experts", "kl", "ref_kl", *stats.VERDICT_COLUMNS,
                "p_seq", "nll_diff", "nll_ci_lo", "nll_ci_hi", "nll_p_seq")


def _tests(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{k: t[k] for k in TEST_COLUMNS} for t in rows], columns=TEST_COLUMNS)


def frontier_report(rows: list[dict], st: dict, drift: dict, sentence: str,
                    meta: dict, outdir) -> list[Path]:
    """rows: frontier.summarize on the confirmation split; st: frontier.study."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame([{
        "rule": r["rule"], "family": r["family"], "param": r["param"], "null": r["null"],
        "experts": r["experts"], "experts 95% CI": _ci(r["experts_ci"]), "KL": r["kl"],
        "KL 95% CI": _ci(r["kl_ci"]), "ppl": r["ppl"], "ppl 95% CI": _ci(r["ppl_ci"]),
        "fill-in share": r.get("fill_in", np.nan),
        "fill-in is top-1": r.get("fill_in_top", np.nan)} for r in rows])
    paths = write_table(table, outdir, "frontier")
    chosen = set(st["chosen"].values())
    sel = pd.DataFrame([{"rule": t["rule"], "family": t["family"], "param": t["param"],
                         "experts": t["experts"], "KL diff": t["estimate"],
                         "chosen": t["rule"] in chosen} for t in st["selection"]])
    vs, grid, thr = (_tests(st[k]) for k in ("versus_topk", "grid", "vs_threshold"))
    drift_rows = []
    for rule, d in drift.items():
        for i, (b, a) in enumerate(zip(d["p_below_before"], d["p_below_after"], strict=True)):
            drift_rows.append({"rule": rule, "layer": i, "P(p<=alpha) under top-8 null": b,
                               "P(p<=alpha) under own-routing null": a,
                               "fill-in, top-8 null": d["fill_in_before"][i],
                               "fill-in, own null": d["fill_in_after"][i]})
    drifts = pd.DataFrame(drift_rows)
    fills = pd.DataFrame([{"rule": r["rule"], **{f"layer {i}": v for i, v in
                                                 enumerate(r["fill_in_by_layer"])}}
                          for r in rows if "fill_in_by_layer" in r])
    for t, name in ((vs, "versus_topk"), (grid, "grid_vs_topk"), (thr, "bh_vs_threshold"),
                    (sel, "selection"), (drifts, "null_drift"), (fills, "fill_in_by_layer")):
        paths += write_table(t, outdir, name)
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
        "perplexity; compute: experts per token (mean over layers). Held-out text comes in "
        f"{st['n_seq']} sequences (the unit of every interval and test): a seeded random "
        f"{len(st['splits']['selection'])} of them (the selection split) choose each family's "
        f"parameter, the other {len(st['splits']['confirmation'])} (the confirmation split) "
        "test it (ids in frontier_summary.json); every table and the figure below are on the "
        "confirmation split, the fill-in shares on all held-out text. 95% percentile bootstrap "
        f"intervals over sequences ({meta.get('bootstrap')} resamples). Baseline: top-k, "
        "k = 1..8, interpolated linearly in the expert count between its points, in the tests "
        "and in the figure alike.",
        "", "**Verdict.** " + sentence, "", WHY, "",
        "p-value definitions (every BH rule's null is calibrated under that rule itself):", ""]
    lines += [f"- `{d}`: {NULLS.get(d).summary}" for d in NULLS]
    lines += ["", "![frontier](frontier.png)", "",
              "## Each family's chosen rule vs top-k (the verdict; confirmation split)", "",
              "Chosen on the selection split (the lowest KL difference to top-k there; table "
              "`selection`). estimate = mean over sequences of the rule's mean KL minus top-k's "
              "at the rule's own mean expert count (negative: the rule is better); p = p_seq: "
              "paired t-test over sequences; p_holm: Holm over the families; NLL columns: the "
              "same for the next-token NLL (no verdict).", "",
              vs.to_markdown(index=False, floatfmt=".4g"), "",
              "## Every rule vs top-k (confirmation split, Holm over the grid)", "",
              grid.to_markdown(index=False, floatfmt=".4g"), "",
              "## BH vs the fixed within-token threshold at equal count (confirmation split)", "",
              "The threshold family uses BH's own within-token null and scores, with one fixed "
              "cutoff per layer instead of the step-up, interpolated at each BH rule's count as "
              "top-k is above: what BH itself adds.", "",
              thr.to_markdown(index=False, floatfmt=".4g"), "",
              "## Selection split: each rule vs top-k (chooses; tests nothing)", "",
              sel.to_markdown(index=False, floatfmt=".4g"), "",
              "## All rules", "", table.to_markdown(index=False, floatfmt=".4g"), "",
              f"## The null under the routing tested (alpha {alpha})", "", *drift_text, "",
              "P(p <= alpha) per layer on held-out tokens routed by the rule, with the rule's "
              "null calibrated under top-8 (before) and under the rule itself (after); an exact "
              "null gives alpha. Fill-in: share of token-layers where BH selected nothing and "
              "min_k = 1 filled in.", "",
              drifts.to_markdown(index=False, floatfmt=".4g"), "",
              "## min_k fill-in share per layer", "",
              fills.to_markdown(index=False, floatfmt=".3g"), ""]
    (outdir / "FRONTIER.md").write_text("\n".join(lines) + "\n")
    (outdir / "frontier_summary.json").write_text(json.dumps(to_jsonable(
        {"meta": meta, "sentence": sentence, "rows": rows, "study": st,
         "drift": drift}), indent=1, sort_keys=True) + "\n")
    return paths + [outdir / "FRONTIER.md", outdir / "frontier_summary.json"]


def _figure(rows: list[dict], outdir: Path) -> Path:
    """KL (log axis) and perplexity against experts per token, one line per family. Lines are
    drawn through points sampled densely along linear interpolation in the count (frontier.curve,
    as the tests interpolate top-k), so on the log axis they bend rather than interpolate
    geometrically; perplexity interpolates the mean NLL (its log) linearly, as the tests do."""
    from .frontier import curve

    fig, axes = new_figure(1, 2, size=(11, 4.2))
    a1, a2 = axes[0]
    fams = list(dict.fromkeys(r["family"] for r in rows))
    for f in fams:
        rs = sorted((r for r in rows if r["family"] == f), key=lambda r: r["experts"])
        x = np.array([r["experts"] for r in rs])
        top = f == "topk"
        xs = np.linspace(x.min(), x.max(), 200)
        for ax, key in ((a1, "kl"), (a2, "ppl")):
            y = np.array([r[key] for r in rs])
            ci = np.array([r[f"{key}_ci"] for r in rs])
            bars = ax.errorbar(x, y, yerr=[y - ci[:, 0], ci[:, 1] - y], marker="o", ms=3,
                               capsize=2, ls="none", color="black" if top else None)
            ys = (curve(rs, xs, "kl") if key == "kl" else
                  np.exp(curve([{**r, "nll": np.log(r["ppl"])} for r in rs], xs, "nll")))
            ax.plot(xs, ys, lw=2.2 if top else 1, color=bars[0].get_color(), label=f)
    a1.set_yscale("log")
    a1.set_ylabel("held-out KL from topk_8 (nats/token)")
    a2.set_ylabel("held-out perplexity")
    for ax in (a1, a2):
        ax.set_xlabel("experts per token (mean)")
    a1.legend(fontsize=7)
    return save_figure(fig, outdir, "frontier")
