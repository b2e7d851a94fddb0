"""The frontier study's bookkeeping: rules per family, the equal-count paired comparison against
top-k over sequences (checked against scipy and statsmodels), the selection and confirmation
splits, the figure's interpolation, the verdict sentence, the threshold baseline, and the
rotated generation order.

    pytest tests/moe_routing/test_moe_frontier.py -q
"""

from collections import Counter

import numpy as np
import pytest
import torch
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from benchlab.core import stats
from benchlab.core.errors import BenchlabError
from benchlab.moe_routing import CONFIGS, generate_cases
from benchlab.moe_routing import frontier as fr
from benchlab.moe_routing.calibration import make_null
from benchlab.moe_routing.routers import Routing, route


def test_every_family_has_at_least_six_points_and_names_are_unique():
    rs = fr.rules(CONFIGS["tiny"])
    names = [r.name for r in rs]
    assert len(names) == len(set(names))
    fams = Counter(fr.family(r) for r in rs)
    assert fams["topk"] == 8 and all(n >= 6 for n in fams.values()), fams
    assert {"bh_per_expert", "bh_pooled", "bh_within", "bh_prob_t2"} <= set(fams)
    with pytest.raises(BenchlabError, match="frontier rule 'bh_pooled@0.33'"):
        fr.rule(CONFIGS["tiny"], "bh_pooled@0.33")


def _points(g, n_seq, seq_len, rules, shift=None):
    """Synthetic points: top-k 1..8 plus `rules` {name: (mean count, kl scale)}; `shift`
    {name: (sequences, added kl)}. Tokens of a sequence share a sequence effect."""
    n = n_seq * seq_len
    seq_effect = np.repeat(g.normal(0, 1, n_seq), seq_len)
    pts = {f"topk_{k}": {"kl": g.exponential(1 / k, n) + 0.1 * seq_effect ** 2,
                         "nll": g.normal(5, 1, n_seq * (seq_len - 1)),
                         "experts": np.full(n, float(k))} for k in range(1, 9)}
    for name, (count, scale) in rules.items():
        lo = np.floor(count)
        ex = np.where(np.arange(n) % 2 == 0, lo, 2 * count - lo)
        pts[name] = {"kl": g.exponential(scale, n) + 0.1 * seq_effect ** 2,
                     "nll": g.normal(5, 1, n_seq * (seq_len - 1)), "experts": ex}
    for name, (seqs, add) in (shift or {}).items():
        pts[name]["kl"].reshape(n_seq, seq_len)[seqs] += add
    return pts


def test_versus_tests_sequences_with_holm_and_checkable_verdicts():
    cfg = CONFIGS["tiny"]
    names = ["bh_pooled@0.4", "bh_within@0.2", "bh_within@0.5"]
    rs = [r for r in fr.rules(cfg) if fr.family(r) == "topk"] + [fr.rule(cfg, n) for n in names]
    g = np.random.default_rng(0)
    n_seq, seq_len = 12, 30
    pts = _points(g, n_seq, seq_len, {"bh_pooled@0.4": (2.5, 0.5), "bh_within@0.2": (1.5, 0.5),
                                      "bh_within@0.5": (3.0, 0.3)})
    seqs = np.arange(4, 12)
    rows = fr.versus(pts, rs, n_seq, seqs, n_boot=500)
    assert [t["rule"] for t in rows] == names
    ps = []
    for t in rows:
        c = t["experts"]
        lo = int(np.floor(c)) if c < 8 else 7
        w = c - lo
        ref = (1 - w) * pts[f"topk_{lo}"]["kl"] + w * pts[f"topk_{lo + 1}"]["kl"]
        a = pts[t["rule"]]["kl"].reshape(n_seq, seq_len)[seqs].mean(1)  # per-sequence means
        b = ref.reshape(n_seq, seq_len)[seqs].mean(1)
        assert t["n_units"] == len(seqs)
        assert np.isclose(t["estimate"], (a - b).mean())
        assert np.isclose(t["p"], sps.ttest_rel(a, b).pvalue) and t["p_seq"] == t["p"]
        assert t["ci_lo"] < t["estimate"] < t["ci_hi"]
        assert stats.check_verdict(t) is None
        ps.append(t["p"])
    want = multipletests(ps, method="holm")[1]
    assert np.allclose([t["p_holm"] for t in rows], want)


def test_figure_draws_top_k_as_the_tests_interpolate_it():
    cfg = CONFIGS["tiny"]
    rs = [r for r in fr.rules(cfg) if fr.family(r) == "topk"]
    pts = _points(np.random.default_rng(1), 6, 10, {})
    rows = fr.summarize(pts, rs, 50, 6)
    ref = sorted((fr.part(pts[r.name], 6) for r in rs), key=lambda q: q["experts"].mean())
    for c in (1.0, 1.77, 2.5, 7.58, 8.0):
        assert np.isclose(fr.curve(rows, np.array([c]))[0], fr.interpolate(ref, c)["kl"].mean())
    assert fr.interpolate(ref, 8.5) is None


def test_study_chooses_on_selection_and_confirms_on_the_rest():
    cfg = CONFIGS["tiny"]
    names = ["bh_within@0.2", "bh_within@0.5", "bh_pooled@0.4"]
    rs = [r for r in fr.rules(cfg) if fr.family(r) == "topk"] + [fr.rule(cfg, n) for n in names]
    n_seq, seq_len = 20, 16
    sel = fr.split(cfg, n_seq)
    assert len(sel["selection"]) == len(sel["confirmation"]) == 10
    assert sorted([*sel["selection"], *sel["confirmation"]]) == list(range(n_seq))
    assert list(sel["selection"]) != list(range(10))  # random, not the corpus' first half
    assert all((fr.split(cfg, n_seq)[k] == v).all() for k, v in sel.items())  # seeded
    # bh_within@0.5 looks best on the selection split only (its kl lowered there)
    pts = _points(np.random.default_rng(2), n_seq, seq_len,
                  {"bh_within@0.2": (1.5, 0.45), "bh_within@0.5": (2.5, 0.5),
                   "bh_pooled@0.4": (2.2, 0.6)}, shift={"bh_within@0.5": (sel["selection"], -1)})
    st = fr.study(cfg, pts, rs, n_seq)
    assert st["chosen"]["bh_within"] == "bh_within@0.5"
    (t,) = [t for t in st["versus_topk"] if t["family"] == "bh_within"]
    assert t["rule"] == "bh_within@0.5" and t["n_units"] == 10
    assert t["estimate"] > 0  # the selection split's advantage does not carry over
    assert {t["rule"] for t in st["grid"]} == set(names)
    again = fr.study(cfg, {k: {**v, "kl": v["kl"].copy()} for k, v in pts.items()}, rs, n_seq)
    for k in ("versus_topk", "grid"):
        assert [r["estimate"] for r in again[k]] == [r["estimate"] for r in st[k]]
    sentence = fr.verdict_sentence(st, seq_len)
    assert "confirmation split (10 held-out sequences of 16 tokens" in sentence


def test_sentence_spans_only_the_points_it_names():
    rows = [{"rule": f"bh_within@{a}", "family": "bh_within", "experts": c, "verdict": v,
             "n_units": 16, "estimate": 0.1, "ci_lo": 0.0, "ci_hi": 0.2, "p": 0.1, "p_seq": 0.1,
             "p_holm": 0.2, "nll_diff": 0.0, "nll_p_seq": 0.5}
            for a, c, v in ((0.01, 1.0, "not shown"), (0.2, 1.27, "better"),
                            (0.4, 1.77, "worse"), (0.95, 7.58, "worse"))]
    st = {"versus_topk": rows[1:2], "grid": rows, "vs_threshold": []}
    s = fr.verdict_sentence(st, 128)
    assert "worse at 2 (1.77-7.58 experts/token)" in s and "better at 1 (1.27-1.27" in s
    assert "not shown at 1" in s and "1.00-" not in s


def test_threshold_route_is_a_fixed_cutoff_on_the_calibrated_p_values():
    g = torch.Generator().manual_seed(0)
    null = make_null("within_token", torch.randn(1, 500, 64, generator=g))
    layer = null.layer(0)
    x = torch.randn(300, 64, generator=g)
    r = Routing("thr", "threshold", alpha=2 / 64, null="within_token", min_k=1, max_k=8)
    mask, w = route(x, r, layer)
    p = layer.pvalues(x).numpy()
    for i in range(x.shape[0]):  # brute force: the k smallest p-values, ties to the lower index
        k = int(np.clip((p[i] <= r.alpha).sum(), 1, 8))
        want = np.zeros(64, bool)
        want[np.lexsort((np.arange(64), p[i]))[:k]] = True
        assert (mask[i].numpy() == want).all()
    assert torch.allclose(w, torch.softmax(x, -1) * mask)
    assert 1 < mask.sum(-1).float().mean() < 4  # about 2 + exp(-2) under the null
    with pytest.raises(BenchlabError, match="threshold needs a calibrated null"):
        Routing("thr", "threshold", null="naive")


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
