"""The seed report's statistics: paired tests over prompts through core.stats (Holm over the
configs of a metric, checkable verdicts, checked against scipy and statsmodels), no Cohen's d
against a constant baseline, held-out quality one row per config (not per prompt), and the alpha
sweep's monotonicity only from two alphas or more.

    pytest tests/moe_routing/test_moe_report.py -q
"""

import importlib

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from benchlab.core import stats
from benchlab.core.report import records_frame

rp = importlib.import_module("benchlab.moe_routing.report")  # the package exports report()


def _seed(configs: dict[str, float], n_prompts: int = 8, seed: int = 0) -> pd.DataFrame:
    """Prompt rows per config: avg experts = the given mean + noise (topk_8: exactly 8)."""
    g = np.random.default_rng(seed)
    rows = []
    for name, mean in configs.items():
        for i in range(n_prompts):
            rows.append({"config_name": name, "prompt_id": f"p{i}",
                         "prompt_category": rp.CATEGORIES[i % 4],
                         "avg_experts_per_token": mean if name == "topk_8" else
                         mean + g.normal(0, 0.3), "inference_time_sec": 0.03 + g.normal(0, 1e-3),
                         "tokens_per_sec": 250 + g.normal(0, 5),
                         "expert_utilization_cv": 1.4 + g.normal(0, 0.1),
                         "prompt_kl": 0.0 if name == "topk_8" else 0.1 + g.normal(0, 0.05)})
    return pd.DataFrame(rows)


def test_paired_tests_over_prompts_use_holm_and_checkable_verdicts():
    seed = _seed({"topk_8": 8.0, "bh_strict": 1.2, "bh_moderate": 1.9, "bh_loose": 7.9})
    out = rp.analysis(seed)
    table = rp.versus_table(out)
    assert set(stats.VERDICT_COLUMNS) <= set(table.columns)
    for _, row in table.iterrows():
        assert stats.check_verdict(row.to_dict()) is None
    ps = []
    for name in ("bh_strict", "bh_moderate", "bh_loose"):
        t = out[name]["vs_topk_8"]["avg_experts_per_token"]
        a = seed[seed.config_name == name].avg_experts_per_token.to_numpy()
        assert t["n_units"] == 8 and np.isclose(t["estimate"], (a - 8).mean())
        assert np.isclose(t["p"], sps.ttest_1samp(a - 8, 0).pvalue)
        assert np.isnan(t["cohens_d"])  # topk_8's experts never vary: no effect size
        assert not np.isnan(out[name]["vs_topk_8"]["tokens_per_sec"]["cohens_d"])
        ps.append(t["p"])
    got = [out[n]["vs_topk_8"]["avg_experts_per_token"]["p_holm"]
           for n in ("bh_strict", "bh_moderate", "bh_loose")]
    assert np.allclose(got, multipletests(ps, method="holm")[1])
    assert out["bh_strict"]["vs_topk_8"]["avg_experts_per_token"]["verdict"] == "smaller"


def _record(routing: str, prompt: str, kl: float, experts: float) -> dict:
    return {"case": f"generate[{routing}-{prompt}]", "kind": "generate", "scale": "tiny",
            "config": {"case": {"kind": "generate", "routing": routing, "prompt": prompt}},
            "metrics": {"heldout_kl": kl, "heldout_ppl": 350.0, "heldout_avg_experts": experts,
                        "avg_experts": experts}}


def test_heldout_quality_is_one_row_per_config_and_the_sweep_needs_two_alphas():
    recs = [_record(r, p, kl, ex) for r, kl, ex in (("topk_8", 0.0, 8.0),
                                                     ("bh_moderate", 0.26, 1.1),
                                                     ("bh_strict", 0.27, 1.05))
            for p in ("simple_1", "domain_1")]
    held = rp.heldout_table(records_frame(recs))
    assert list(held.config_name) == ["topk_8", "bh_strict", "bh_moderate"]  # registry order
    assert "heldout_kl" not in rp.NEW_COLUMNS.values()  # not a per-prompt column
    configs = {n: {"means": {"avg_experts_per_token": 1.0}} for n in held.config_name}
    sweep = rp.alpha_sweep(configs, held)
    assert sweep["alphas"] == [0.01, 0.05] and sweep["monotone"] is True
    one = rp.alpha_sweep({"bh_moderate": configs["bh_moderate"]}, held)
    assert one["monotone"] is None  # one alpha: not shown
