"""The count baselines (unigram, bigram), the grouped allocation, the seed-level verdicts and the
one vacuity rule of the SubLoRA tables."""

import math

import numpy as np
import pandas as pd
import pytest

from benchlab.core import stats
from benchlab.sublora import CONFIGS, PREREGISTERED, REFERENCES, sweep_cases
from benchlab.sublora import baselines as NG
from benchlab.sublora import bounds as B
from benchlab.sublora.config import load
from benchlab.sublora.data import Corpus, sample_documents
from benchlab.sublora.report import summarize, summary_table, vacuity_cell
from benchlab.sublora.subspace import SubspaceConfig, plan_blocks
from benchlab.sublora.verdicts import family_rows, goal_rows, verdict_table, write_verdicts

V, EOT = 12, 11


def _docs(n=40, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        body = rng.choice(6, size=int(rng.integers(1, 9)), p=[.4, .2, .1, .1, .1, .1])
        out.append(np.append(body * 2 % 10, EOT).astype(np.int64))  # tokens 10 and 1.. unused
    return out


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 1000, 2**20 + 5])
def test_gamma_code_length_and_round_trip(n):
    bits = NG.gamma_bits(n)
    assert len(bits) == NG.gamma_length(n) == 2 * int(math.log2(n)) + 1
    assert NG._Reader(np.array(bits + [1])).gamma() == n


@pytest.mark.parametrize("order", [1, 2])
def test_count_table_round_trips_and_its_length_is_the_message(order):
    t = NG.fit(_docs(), order, V, EOT)
    bits = NG.encode_table(t)
    back = NG.decode_table(bits, order, V)
    if order == 1:
        assert np.array_equal(back.counts, t.counts) and t.counts.sum() == sum(map(len, _docs()))
        want = NG.gamma_length(t.counts + 1).sum()
    else:
        assert np.array_equal(back.pairs, t.pairs) and t.pairs[:, 2].sum() == sum(map(len, _docs()))
        a, b, c = t.pairs.T
        gaps = np.diff(np.append(-1, b))
        gaps[np.r_[True, a[1:] != a[:-1]]] = b[np.r_[True, a[1:] != a[:-1]]] + 1
        k = np.bincount(a, minlength=V)
        want = NG.gamma_length(k + 1).sum() + NG.gamma_length(gaps).sum() + NG.gamma_length(c).sum()
    assert bits.size == want == NG.message(t).bits


def _brute_bigram(docs, discount):
    """p(b | a) by dictionaries and loops (independent of baselines.Model)."""
    pairs = {}
    for d in docs:
        prev = EOT
        for tok in d.tolist():
            pairs[(prev, tok)] = pairs.get((prev, tok), 0) + 1
            prev = tok
    cont = {b: sum(1 for (_, bb) in pairs if bb == b) for b in range(V)}
    q = {b: (cont[b] + 1) / (len(pairs) + V) for b in range(V)}
    table = np.zeros((V, V))
    for a in range(V):
        total = sum(c for (aa, _), c in pairs.items() if aa == a)
        types = sum(1 for (aa, _) in pairs if aa == a)
        for b in range(V):
            if total == 0:
                table[a, b] = q[b]
            else:
                table[a, b] = (max(pairs.get((a, b), 0) - discount, 0) / total
                               + discount * types / total * q[b])
    return table


def test_probabilities_match_a_brute_force_and_sum_to_one():
    docs = _docs()
    uni = NG.Model(NG.fit(docs, 1, V, EOT))
    counts = np.bincount(np.concatenate(docs), minlength=V)
    np.testing.assert_allclose(uni.probs([3, 5])[0], (counts + 1) / (counts.sum() + V))
    bi = NG.Model(NG.fit(docs, 2, V, EOT), discount=0.6)
    got = bi.probs(np.arange(V))
    np.testing.assert_allclose(got, _brute_bigram(docs, 0.6), rtol=1e-12)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-12)
    assert (got > 0).all()


class _Split:
    def __init__(self, docs):
        self.docs, self.m = docs, len(docs)

    def document(self, i):
        return self.docs[i]


def test_eval_ngram_is_bounded_like_a_run():
    docs = _docs(60, seed=1)
    corpus = Corpus(_Split(docs), _Split(docs[:5]), V, EOT, "toy")
    cfg = load(None, {"bounds": {"bound_samples": 20, "ngram_docs": 30, "max_doc_tokens": 5}})
    for mode, order in NG.ORDERS.items():
        m = NG.eval_ngram(corpus, cfg, mode)
        model = NG.Model(NG.fit(docs[:30], order, V, EOT), cfg.bounds.ngram_discount)
        raw = []
        for i in sample_documents(60, 20, cfg.bounds.sample_seed):
            doc = docs[i][:5]
            ctx = np.concatenate([[EOT], doc[:-1]])
            raw.append(np.mean([-math.log2(model.probs([c])[0][t])
                                for c, t in zip(ctx, doc, strict=True)]))
        assert m["raw_bpd"] == pytest.approx(np.mean(raw), rel=1e-6)  # float32 as a model
        assert m["message_bits"] == NG.encode_table(NG.fit(docs[:30], order, V, EOT)).size
        assert m["bound_value"] == pytest.approx(B.recompute_bound(m), rel=1e-12)
        assert m["kl_divergence"] == pytest.approx(
            (B.prefix_free_bits(m["message_bits"]) + 5 + 3) * math.log(2))


def test_grouped_has_the_per_group_split_of_fixed_and_one_projector_per_group():
    shapes = {f"transformer.h.{i}.attn.c_attn.lora_{s}_{q}": 512 * (i + 1)
              for i in range(3) for s in "AB" for q in "qv"}
    shapes["lm_head.lora_A"], shapes["lm_head.lora_B"] = 400, 9000
    grouped, _ = plan_blocks(shapes, SubspaceConfig(1000, "grouped"))
    fixed, _ = plan_blocks(shapes, SubspaceConfig(1000, "fixed", 0.8))
    assert [b.name for b in grouped] == ["h0", "h1", "h2", "head"]
    for g in grouped:  # the same d_g as fixed gives the group (A + B), onto A and B together
        a, b = (next(x for x in fixed if x.name == f"{g.name}.{s}") for s in "AB")
        assert (g.start, g.stop) == (a.start, b.stop) and g.D == a.D + b.D
        assert set(g.params) == set(a.params) | set(b.params) and not g.side
    assert grouped[-1].stop == 1000
    (uniform,), _ = plan_blocks(shapes, SubspaceConfig(1000, "uniform"))
    assert uniform.params == tuple(shapes) and (uniform.start, uniform.stop) == (0, 1000)


def test_tiny_runs_eight_seeds_of_each_mode_and_the_count_models_once():
    cases = sweep_cases(CONFIGS["tiny"])
    per = pd.Series([c.mode + str(c.ratio) for c in cases]).value_counts()
    trained = [k for k in per.index if not k.startswith(("unigram", "bigram"))]
    assert all(per[k] >= 8 for k in trained) and {"w00.5", "learned0.5", "fixed0.8",
                                                   "grouped0.5"} <= set(trained)
    assert per["unigram0.5"] == per["bigram0.5"] == 1
    assert PREREGISTERED[0].contender == "learned" and PREREGISTERED[0].baseline == "fixed_bheavy"


def _runs(n_seeds=8, learned_shift=-0.3, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_seeds):
        w0 = 13.9 + rng.normal(0, 0.01)
        base = {"d": 1000, "seed": s, "ratio": np.nan, "raw_bpd": 12.0, "top1_error_bound": 1.1}
        rows.append({**base, "mode": "w0", "label": "w=0 (untrained)", "bound_value": w0})
        for mode, ratio, shift in (("fixed", 0.8, 0.0), ("learned", np.nan, learned_shift),
                                   ("grouped", np.nan, 0.2)):
            b = 12.7 + shift + rng.normal(0, 0.05)
            rows.append({**base, "mode": mode, "ratio": ratio, "label": mode, "bound_value": b,
                         "raw_bpd": 10.5 + shift, "top1_error_bound": 0.995})
    for mode, bound, raw in (("unigram", 12.08, 9.32), ("bigram", 10.85, 6.26)):
        rows.append({"d": 1000, "seed": 0, "ratio": np.nan, "mode": mode, "label": mode,
                     "bound_value": bound, "raw_bpd": raw, "top1_error_bound": 1.1})
    return pd.DataFrame(rows)


def test_seed_level_verdicts_follow_from_their_rows_and_match_scipy():
    from scipy import stats as sps

    runs = _runs()
    table = verdict_table(runs, PREREGISTERED)
    assert list(table.columns[-len(stats.VERDICT_COLUMNS):]) == list(stats.VERDICT_COLUMNS)
    for _, row in table.iterrows():
        assert stats.check_verdict(row.to_dict()) is None, row.to_dict()
    tests = table[table["kind"] == "test"]
    assert len(tests) == len(PREREGISTERED)
    first = tests.iloc[0]
    x = runs[runs["mode"] == "learned"].sort_values("seed")["bound_value"].to_numpy()
    y = runs[runs["mode"] == "fixed"].sort_values("seed")["bound_value"].to_numpy()
    assert first["n_units"] == 8 and first["estimate"] == pytest.approx(np.mean(x - y))
    assert first["p"] == pytest.approx(sps.ttest_rel(x, y).pvalue, rel=1e-10)
    ps = tests["p"].to_numpy()  # Holm over the family (the grouped-vs-uniform test has no units)
    srt = np.sort(ps[:3])  # Holm by hand over the 3 tests that have p
    by_hand = dict(zip(srt, np.maximum.accumulate(np.minimum(1, (3 - np.arange(3)) * srt)),
                       strict=True))
    assert np.isnan(ps[3]) and np.isnan(tests.iloc[3]["p_holm"])
    assert tests["p_holm"].iloc[:3].tolist() == pytest.approx([by_hand[p] for p in ps[:3]])
    assert first["verdict"] == "better" and tests.iloc[3]["verdict"] == "not shown"
    goals = pd.DataFrame(goal_rows(runs))
    assert goals["p"].isna().all() and goals["p_holm"].isna().all()
    mine = goals[goals["contender"] == "learned"].set_index("baseline")
    bound = mine.loc["min(w0, unigram) bound"]
    assert bound["estimate"] == pytest.approx(np.mean(12.08 - x))   # unigram beats every w = 0
    assert bound["null"] == 1.0 and bound["verdict"] == "missed"
    w0 = runs[runs["mode"] == "w0"].sort_values("seed")["bound_value"].to_numpy()
    assert mine.loc["w0 bound", "estimate"] == pytest.approx(np.mean(w0 - x))
    assert mine.loc["w0 bound", "verdict"] == "met"  # 13.9 - 12.4: 1.5 bits, CI above 1
    raw = goals[(goals["metric"] == "raw_bpd")]
    assert (raw["verdict"] == "missed").all()  # 10.2..10.7 raw bpd against the unigram's 9.32


def test_written_verdict_tables_pass_the_claims_check(tmp_path):
    import csv

    write_verdicts(verdict_table(_runs(), PREREGISTERED), tmp_path)
    rows = list(csv.DictReader((tmp_path / "verdicts.csv").open()))
    md = [ln.strip().strip("|").split("|") for ln in
          (tmp_path / "verdicts.md").read_text().splitlines()]
    md_rows = [dict(zip([h.strip() for h in md[0]], [c.strip() for c in r], strict=True))
               for r in md[2:]]
    assert len(rows) == len(md_rows) == len(PREREGISTERED) - 1 + 3 * 3  # no row without units
    for row in rows + md_rows:
        assert stats.check_verdict(row) is None, row
    assert {r["verdict"] for r in rows} == {"better", "not shown", "met", "missed"}


def test_few_seeds_are_not_shown():
    table = verdict_table(_runs(n_seeds=3, learned_shift=-2.0), PREREGISTERED)
    assert (table["verdict"] == "not shown").all()
    assert family_rows(_runs().iloc[:0], PREREGISTERED) == []


def test_one_vacuity_rule_and_reference_rows():
    assert vacuity_cell(0.999, 0.001, 1.0) == "0.999 ± 0.001"
    assert vacuity_cell(1.0, 0.0, 1.0) == vacuity_cell(12.3, 0.1, 12.0) == "vacuous"
    runs = _runs()
    runs.attrs["random_guess_bpd"] = 12.0
    for m in ("empirical_bpd", "best_alpha", "kl_divergence", "compressed_size_bits", "val_loss",
              "top1_error"):
        runs[m] = 1.0
    table = summary_table(summarize(runs), 12.0)
    assert {"unigram", "bigram"} <= set(table["mode"]) and set(REFERENCES) >= {"unigram"}
    by = table.set_index("mode")
    assert by.loc["w=0 (untrained)", "bound"] == by.loc["unigram", "bound"] == "vacuous"  # 12.08
    assert by.loc["bigram", "bound"] == "10.850 ± 0.000"
    assert by.loc["learned", "top-1 error bound"] == "0.995 ± 0.000"
    assert (table["top-1 error bound"].isin(["vacuous"]) ==
            [float(summarize(runs).set_index("label").loc[m, "top1_error_bound_mean"]) >= 1
             for m in table["mode"]]).all()
