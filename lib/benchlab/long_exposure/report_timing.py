"""Timing verdicts of the Long Exposure report: one row per (case, contender, baseline) with a
`baseline` column, from the per-round seconds the records carry (`t_rounds_<name>`).

Each row is core.stats.compare_paired(contender, baseline, kind="ratio", units=round): the
median over rounds of contender / baseline seconds (below 1: faster), its 95% bootstrap interval
and the paired t-test on the log ratios; one table is one Holm family (core.stats.family). Rows
against per_document, the strongest exact dense baseline, come first.
"""

import numpy as np
import pandas as pd

from benchlab.core.report import of_kind
from benchlab.core.stats import VERDICT_COLUMNS, compare_paired, family

# baseline order in every table: the strongest exact dense baseline first
BASELINE_ORDER = ("per_document", "sdpa_causal", "sdpa_doc_mask", "eager_doc_mask")
# model-step trainer modes (setups.DENSE_MODES) -> the names the tables use
STEP_BASELINES = {"sdpa_docs": "per_document", "sdpa_causal": "sdpa_causal",
                  "sdpa": "sdpa_doc_mask", "eager": "eager_doc_mask"}
WORDS = ("faster", "slower")


def _rounds(row, name):
    v = row.get(f"t_rounds_{name}")
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else np.asarray(v, float)


def verdict_frame(items: list[dict]) -> pd.DataFrame:
    """items: {labels..., "contender_rounds", "baseline_rounds"} -> one family of verdict rows,
    labels first, then t_contender / t_baseline (medians) and VERDICT_COLUMNS."""
    if not items:
        return pd.DataFrame()
    rows = []
    for it in items:
        c, b = np.asarray(it["contender_rounds"], float), np.asarray(it["baseline_rounds"], float)
        labels = {k: v for k, v in it.items() if not k.endswith("_rounds")}
        rows.append({**labels, "t_contender": float(np.median(c)), "t_baseline": float(
            np.median(b)), **compare_paired(c, b, units=np.arange(c.size), kind="ratio")})
    rows = family(rows, better="below", words=WORDS)
    out = pd.DataFrame(rows)
    first = [c for c in out.columns if c not in VERDICT_COLUMNS]
    return out[first + list(VERDICT_COLUMNS)]


def _order(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    rank = frame["baseline"].map({b: i for i, b in enumerate(BASELINE_ORDER)})
    return (frame.assign(_rank=rank).sort_values(["_rank", *by], kind="stable")
            .drop(columns="_rank").reset_index(drop=True))


def doc_attn_table(frame) -> pd.DataFrame:
    """Every LE mask (exposed, each swept density) against per_document; the exposer's masks
    also against sdpa_causal and sdpa_doc_mask; per_document against those two."""
    rows = of_kind(frame, "doc_attn")
    items = []
    for _, r in rows.iterrows():
        names = [c.removeprefix("t_rounds_") for c in rows.columns
                 if c.startswith("t_rounds_le_") and _rounds(r, c.removeprefix("t_rounds_"))
                 is not None]
        pairs = [(n, "per_document") for n in names]
        pairs += [(c, b) for c in ("le_exposed", "per_document")
                  for b in ("sdpa_causal", "sdpa_doc_mask")]
        for c, b in pairs:
            if _rounds(r, c) is None or _rounds(r, b) is None:
                continue
            items.append({"case.model": r["case.model"], "case.seq_len": int(r["case.seq_len"]),
                          "contender": c, "density": float(r.get(f"density_{c}", np.nan)),
                          "baseline": b, "contender_rounds": _rounds(r, c),
                          "baseline_rounds": _rounds(r, b)})
    out = verdict_frame(items)
    return _order(out, ["case.seq_len", "density", "contender"]) if not out.empty else out


def breakeven_table(frame) -> pd.DataFrame:
    """Per doc_attn case: the break-even in-document density against per_document with its
    interval, beside the documents' own density and the exposer's."""
    rows = of_kind(frame, "doc_attn")
    cols = ["case.model", "case.seq_len", "baseline", "rounds", "documents", "density_doc",
            "density_le_exposed", "break_even_per_document", "break_even_ci_lo",
            "break_even_ci_hi", "grid_ran"]
    if rows.empty:
        return rows
    rows = rows.assign(baseline="per_document",
                       grid_ran=rows["grid_ran"].map(lambda g: " ".join(f"{x:g}" for x in g)))
    return rows[[c for c in cols if c in rows]].sort_values("case.seq_len").reset_index(drop=True)


STEP_LABELS = {"model_step": ("case.model", "case.init", "case.masks", "case.density",
                              "case.seq_len"),
               "end2end": ("case.model", "case.method", "case.seq_len"),
               "scale": ("case.model", "case.seq_len"),
               "ablation": ("case.model", "case.part", "case.seq_len"),
               "gpt2": ("case.model", "case.method", "case.seq_len")}


def step_table(frame, kind: str) -> pd.DataFrame:
    """A training-step kind (STEP_LABELS): each recorded LE variant against every dense
    baseline, from records that carry per-round seconds."""
    rows = of_kind(frame, kind)
    labels = STEP_LABELS[kind]
    items = []
    for _, r in rows.iterrows():
        for c in ("le", "le_dispatch", "le_flex"):
            for mode, b in STEP_BASELINES.items():
                if _rounds(r, c) is None or _rounds(r, mode) is None:
                    continue
                items.append({**{k: r[k] for k in labels}, "contender": c,
                              **{k: r.get(k) for k in ("density_attn", "density_doc",
                                                       "density_mlp")},
                              "baseline": b, "contender_rounds": _rounds(r, c),
                              "baseline_rounds": _rounds(r, mode)})
    out = verdict_frame(items)
    if out.empty:
        return out
    out["case.seq_len"] = out["case.seq_len"].astype(int)
    return _order(out, [*(k for k in labels if k != "case.model"), "contender"])
