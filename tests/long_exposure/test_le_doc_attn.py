"""The doc_attn study (attn_study.py): masks from the trained tiny model, per-document SDPA as the
reference baseline, the break-even in-document density with its interval over rounds, and the
verdict tables (report_timing) checked against scipy and against their own columns.

    pytest tests/long_exposure/test_le_doc_attn.py -q
"""

import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats as sps

from benchlab.core import to_jsonable
from benchlab.core.report import records_frame
from benchlab.core.stats import VERDICT_COLUMNS, check_verdict
from benchlab.core.timing import Timer
from benchlab.long_exposure import CONFIGS, smoke
from benchlab.long_exposure import breakeven as be
from benchlab.long_exposure.attn_study import (
    doc_attn_cases,
    measure_doc_attn,
    top_blocks,
    trained_masks,
)
from benchlab.long_exposure.report import report
from benchlab.long_exposure.report_timing import breakeven_table, doc_attn_table


def test_cases_run_the_trained_tiny_model_at_1024_and_2048_for_ten_rounds():
    cases = doc_attn_cases(CONFIGS["tiny"])
    assert [(c.model, c.seq_len) for c in cases] == [("opt-tiny", 1024), ("opt-tiny", 2048)]
    assert all(c.rounds >= 10 and min(c.grid) == 0.03 and max(c.grid) == 0.2 for c in cases)


def test_top_blocks_keeps_the_diagonal_then_the_heaviest_allowed_blocks():
    gen = torch.Generator().manual_seed(0)
    nb = 8
    allowed = torch.ones(nb, nb, dtype=torch.bool).tril()
    allowed[4:, :4] = False  # two documents of 4 blocks
    scores = torch.rand(1, 2, nb, nb, generator=gen) * allowed
    keep = top_blocks(scores, allowed[None], 0.4)
    causal = nb * (nb + 1) // 2
    assert keep.sum((-1, -2)).tolist() == [[round(0.4 * causal)] * 2]
    assert keep.diagonal(dim1=-2, dim2=-1).all() and not (keep & ~allowed).any()
    for h in range(2):  # the kept off-diagonal blocks are the heaviest allowed ones
        off = allowed & ~torch.eye(nb, dtype=torch.bool)
        kept = scores[0, h][keep[0, h] & off]
        dropped = scores[0, h][~keep[0, h] & off]
        assert kept.min() >= dropped.max()
    assert top_blocks(scores, allowed[None], 0.01).sum() == 2 * nb  # never below the diagonal


def test_trained_masks_stay_inside_documents_and_hit_the_grid():
    config = CONFIGS["tiny"]
    from benchlab.long_exposure import setups

    ids = setups.batch(config, "opt-tiny", 256)[:1]
    m = trained_masks("opt-tiny", ids, 0.95, (0.03, 0.1, 0.2, 0.9))
    docs = m["docs"]
    allowed = docs.blocks(16)[:, None]
    for name, mask in m.items():
        if name.startswith("le_"):
            assert mask.shape == (1, 4, 16, 16) and not (mask & ~allowed).any(), name
    assert "le_at_0.9" not in m or docs.density(16) >= 0.9  # never beyond the documents
    if "le_at_0.2" in m:
        assert abs(float(m["le_at_0.2"].sum()) / (4 * 16 * 17 / 2) - 0.2) < 0.02


def test_crossing_interval_is_the_crossing_of_median_curves_over_resampled_rounds():
    rng = np.random.default_rng(1)
    base = 1.0 + 0.05 * rng.standard_normal(12)
    times = {d: base * d / 0.1 * (1 + 0.02 * rng.standard_normal(12)) for d in (0.05, 0.1, 0.2)}
    est, lo, hi = be.crossing_interval(base, times)
    curve = {d: float(np.median(base / t)) for d, t in times.items()}
    assert est == be.crossing(curve) and lo <= est <= hi
    assert 0.08 < lo and hi < 0.12  # speedup 1 at density 0.1 by construction
    exact = {d: base * d / 0.1 for d in (0.05, 0.2)}  # noiseless: every resample agrees
    e, lo, hi = be.crossing_interval(base, exact)
    assert lo == hi == pytest.approx(e) and e == pytest.approx(0.05 + (2 - 1) * 0.15 / 1.5)
    with pytest.raises(ValueError):
        be.crossing_interval(base, {0.1: base[:3]})


def _record(case, metrics):
    return {"experiment": "long_exposure", "case": f"doc_attn[{case.id}]", "kind": "doc_attn",
            "scale": "tiny", "config": {"case": to_jsonable(dataclasses.asdict(case))},
            "metrics": metrics}


def _synthetic(rounds=10, seed=0):
    """doc_attn metrics where LE at 0.03 is clearly faster than per_document, at 0.1 clearly
    slower, and the exposed masks level with sdpa_causal."""
    rng = np.random.default_rng(seed)
    per_doc = 0.06 * (1 + 0.02 * rng.standard_normal(rounds))
    def noisy(x):
        return x * (1 + 0.02 * rng.standard_normal(rounds))

    t = {"per_document": per_doc, "sdpa_causal": 0.17 * (1 + 0.3 * rng.standard_normal(rounds)),
         "sdpa_doc_mask": noisy(per_doc * 4.0), "le_exposed": noisy(np.full(rounds, 0.17)),
         "le_at_0.03": noisy(per_doc * 0.5), "le_at_0.1": noisy(per_doc * 1.8)}
    b, lo, hi = be.crossing_interval(t["per_document"], {0.03: t["le_at_0.03"],
                                                         0.1: t["le_at_0.1"]})
    return {**{f"t_rounds_{k}": list(v) for k, v in t.items()},
            **{f"density_{k}": d for k, d in (("le_exposed", 0.14), ("le_at_0.03", 0.03),
                                              ("le_at_0.1", 0.1), ("per_document", 0.15),
                                              ("sdpa_causal", 1.0), ("sdpa_doc_mask", 0.15))},
            "density_doc": 0.15, "documents": 11.0, "rounds": rounds, "grid_ran": [0.03, 0.1],
            "break_even_per_document": b, "break_even_ci_lo": lo, "break_even_ci_hi": hi}


def test_doc_attn_table_leads_with_per_document_and_verdicts_follow_scipy(tmp_path):
    case = doc_attn_cases(CONFIGS["tiny"])[0]
    m = _synthetic()
    table = doc_attn_table(records_frame([_record(case, m)]))
    assert list(table.columns[-len(VERDICT_COLUMNS):]) == list(VERDICT_COLUMNS)
    assert list(table["baseline"][:3]) == ["per_document"] * 3
    got = {(r.contender, r.baseline): r for r in table.itertuples()}
    assert got[("le_at_0.03", "per_document")].verdict == "faster"
    assert got[("le_at_0.1", "per_document")].verdict == "slower"
    assert got[("le_exposed", "sdpa_causal")].verdict == "not shown"
    # independent check: median ratio and the t-test on log ratios (scipy), Holm by hand
    c, b = np.asarray(m["t_rounds_le_exposed"]), np.asarray(m["t_rounds_per_document"])
    row = got[("le_exposed", "per_document")]
    assert row.estimate == pytest.approx(np.median(c / b))
    assert row.p == pytest.approx(sps.ttest_rel(np.log(c), np.log(b)).pvalue)
    ps = np.sort(table["p"].to_numpy())
    holm = np.minimum(1, np.maximum.accumulate(ps * (len(ps) - np.arange(len(ps)))))
    assert np.allclose(np.sort(table["p_holm"].to_numpy()), holm)
    # the published table's rows carry their own verdicts (claims check), read back from CSV
    report([_record(case, m)], tmp_path)
    import pandas as pd

    csv = pd.read_csv(tmp_path / "doc_attn.csv", keep_default_na=False)
    assert all(check_verdict(r) is None for r in csv.to_dict("records"))
    assert "per_document" in (tmp_path / "doc_attn_breakeven.md").read_text()
    few = doc_attn_table(records_frame([_record(case, _synthetic(rounds=4))]))
    assert set(few["verdict"]) == {"not shown"}


def test_breakeven_table_has_the_interval_and_the_baseline():
    cases = doc_attn_cases(CONFIGS["tiny"])
    recs = [_record(c, _synthetic(seed=i)) for i, c in enumerate(cases)]
    t = breakeven_table(records_frame(recs))
    assert list(t["case.seq_len"]) == [1024, 2048] and set(t["baseline"]) == {"per_document"}
    for r in t.itertuples():
        assert 0.03 < r.break_even_ci_lo <= r.break_even_per_document <= r.break_even_ci_hi < 0.1


def test_measure_doc_attn_smoke_is_exact_and_records_round_times():
    torch.set_num_threads(1)
    config = smoke(CONFIGS["tiny"])
    (case,) = doc_attn_cases(config)
    m = measure_doc_attn(case, config, Timer())
    assert m["max_abs_error"] < 1e-4 and m["rounds"] == 1 and m["heads"] == 4
    names = ("per_document", "sdpa_causal", "sdpa_doc_mask", "le_exposed")
    assert all(len(m[f"t_rounds_{n}"]) == 1 for n in names)
    assert 0 < m["density_le_exposed"] <= m["density_doc"] + 1e-6


def test_end2end_step_records_per_document_rounds_and_its_table_leads_with_them():
    """measure_end2end times per-document SDPA (and causal SDPA) beside LE; the end2end_timing
    table reads its rounds: a `baseline` column, per_document first, verdicts from the rows."""
    from dataclasses import replace

    from benchlab.long_exposure import Case
    from benchlab.long_exposure.measure import measure_end2end
    from benchlab.long_exposure.report_timing import step_table

    torch.set_num_threads(1)
    config = replace(smoke(CONFIGS["tiny"]), rounds=2)
    case = Case("lora64", "end2end", "opt-tiny", 64, "lora")
    m = measure_end2end(case, config, Timer())
    assert {f"t_rounds_{k}" for k in ("le", "sdpa_docs", "sdpa", "sdpa_causal", "eager")} <= set(m)
    assert len(m["t_rounds_sdpa_docs"]) == 2 and m["speedup_sdpa_docs"] > 0
    table = step_table(records_frame([{**_record(case, m), "kind": "end2end"}]), "end2end")
    assert list(table["baseline"]) == ["per_document", "sdpa_causal", "sdpa_doc_mask",
                                       "eager_doc_mask"]
    assert set(table["verdict"]) == {"not shown"}  # 2 rounds claim nothing


def test_attn_study_cli_records_through_run_and_writes_its_tables(tmp_path):
    from benchlab.core.store import ResultStore
    from benchlab.long_exposure.cli import main as le_main

    assert le_main(["attn-study", "--seq-len", "64", "--rounds", "1", "--out",
                    str(tmp_path)]) == 0
    (rec,) = ResultStore(tmp_path / "store.jsonl").read()
    assert rec["case"] == "doc_attn[opttiny-L64]" and rec["kind"] == "doc_attn"
    table = (tmp_path / "doc_attn.md").read_text()
    assert "per_document" in table and "not shown" in table  # one round claims nothing
    assert (tmp_path / "doc_attn_breakeven.csv").exists()
