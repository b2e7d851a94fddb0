"""The frontier study's bookkeeping: rules per family, the equal-count paired comparison against
top-k (checked against scipy), the verdict sentence, and the rotated generation order.

    pytest tests/moe_routing/test_moe_frontier.py -q
"""

from collections import Counter

import numpy as np
import pytest
from scipy import stats as sps

from benchlab.core.errors import BenchlabError
from benchlab.moe_routing import CONFIGS, generate_cases
from benchlab.moe_routing import frontier as fr


def test_every_family_has_at_least_six_points_and_names_are_unique():
    rs = fr.rules(CONFIGS["tiny"])
    names = [r.name for r in rs]
    assert len(names) == len(set(names))
    fams = Counter(fr.family(r) for r in rs)
    assert fams["topk"] == 8 and all(n >= 6 for n in fams.values()), fams
    assert {"bh_per_expert", "bh_pooled", "bh_within", "bh_prob_t2"} <= set(fams)
    with pytest.raises(BenchlabError, match="frontier rule 'bh_pooled@0.33'"):
        fr.rule(CONFIGS["tiny"], "bh_pooled@0.33")


def test_versus_topk_interpolates_at_equal_count_and_tests_pairs():
    cfg = CONFIGS["tiny"]
    rs = [r for r in fr.rules(cfg) if fr.family(r) == "topk"] + [fr.rule(cfg, "bh_pooled@0.4")]
    g = np.random.default_rng(0)
    n = 500
    points = {f"topk_{k}": {"kl": g.exponential(1 / k, n), "nll": g.normal(5, 1, n),
                            "experts": np.full(n, float(k))} for k in range(1, 9)}
    counts = np.where(np.arange(n) % 2 == 0, 2.0, 3.0)  # mean 2.5
    points["bh_pooled@0.4"] = {"kl": g.exponential(0.5, n), "nll": g.normal(5, 1, n),
                               "experts": counts}
    (t,) = fr.versus_topk(points, rs, 300)
    ref = 0.5 * points["topk_2"]["kl"] + 0.5 * points["topk_3"]["kl"]
    want = sps.ttest_rel(points["bh_pooled@0.4"]["kl"], ref)
    assert t["experts"] == 2.5
    assert np.isclose(t["kl_diff"], (points["bh_pooled@0.4"]["kl"] - ref).mean())
    assert np.isclose(t["t"], want.statistic) and np.isclose(t["p"], want.pvalue)
    lo, hi = t["kl_diff_ci"]
    assert lo < t["kl_diff"] < hi
    assert t["verdict"] == ("worse" if lo > 0 else "better" if hi < 0 else "tie")
    sentence = fr.verdict_sentence([t], n)
    assert "bh_pooled" in sentence and ("frontier" in sentence)


def test_generation_runs_prompt_by_prompt_in_rotated_order():
    cfg = CONFIGS["tiny"]
    cases = generate_cases(cfg)
    R = len(cfg.routings)
    blocks = [cases[i:i + R] for i in range(0, len(cases), R)]
    firsts = []
    for i, block in enumerate(blocks):
        assert len({c.prompt for c in block}) == 1  # one prompt, all routings back to back
        assert sorted(c.routing for c in block) == sorted(cfg.routings)
        firsts.append(block[0].routing)
        assert [c.routing for c in block] == list(cfg.routings[i % R:] + cfg.routings[:i % R])
    assert len(set(firsts)) == min(R, len(blocks))  # no routing always first
