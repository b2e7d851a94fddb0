"""Fig 9's fixed patterns (Longformer, BigBird) and the per-layer pattern study.

    pytest tests/long_exposure/test_le_patterns.py -q
"""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from benchlab.core import Timer
from benchlab.long_exposure import exposer as ex
from benchlab.long_exposure import ops_attn as A
from benchlab.long_exposure import patterns as P
from benchlab.long_exposure.documents import block_mask
from benchlab.long_exposure.opcases import ExposerCase, OpsConfig

B, H, L = 2, 3, 256
NB = L // A.BLOCK
ROW = 2 / (NB + 1)  # one block row's worth of causal density
DOCS = torch.tensor([[0] * 100 + [1] * 60 + [2] * 96, [0] * 30 + [1] * 226])


def masks(density, docs=None, seed=0):
    return {"longformer": P.longformer_mask(B, H, L, density, docs=docs),
            "bigbird": P.bigbird_mask(B, H, L, density, seed=seed, docs=docs)}


@pytest.mark.parametrize("docs", [None, DOCS])
@pytest.mark.parametrize("density", [0.3, 0.5, 0.8])
def test_masks_causal_and_inside_documents(density, docs):
    allowed = torch.ones(NB, NB, dtype=torch.bool).tril().expand(B, NB, NB)
    if docs is not None:
        allowed = block_mask(docs, A.BLOCK)
    for name, m in masks(density, docs).items():
        assert m.shape == (B, H, NB, NB) and m.dtype == torch.bool, name
        assert not (m & ~allowed[:, None]).any(), name
        assert m.diagonal(dim1=-2, dim2=-1).all(), name  # every query keeps its own block


@pytest.mark.parametrize("density", [0.25, 0.3, 0.45, 0.6, 0.8, 0.95])
def test_masks_at_requested_density(density):
    for name, m in masks(density).items():
        assert abs(A.block_density(m) - density) <= ROW, name


def test_bigbird_density_inside_documents():
    doc_density = float(block_mask(DOCS, A.BLOCK).sum()) / (B * NB * (NB + 1) / 2)
    for density in (0.5 * doc_density, 0.8 * doc_density):
        m = P.bigbird_mask(B, H, L, density, docs=DOCS)
        assert abs(A.block_density(m) - density) <= ROW


def test_bigbird_deterministic_per_seed():
    a, b, c = (P.bigbird_mask(B, H, L, 0.4, seed=s) for s in (1, 1, 2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(P.longformer_mask(B, H, L, 0.4), P.longformer_mask(B, H, L, 0.4))


@pytest.mark.parametrize("density", [0.3, 0.6])
def test_longformer_holds_window_and_globals(density):
    m = P.longformer_mask(B, H, L, density)
    w = P.window_for(B, L, density)
    for i in range(NB):
        assert m[..., i, max(0, i - w + 1):i + 1].all()  # the diagonal window
        assert m[..., i, 0].all()  # the global first block
    kept = m.sum((-1, -2)).float()
    assert (kept == kept.flatten()[0]).all()  # one pattern for every (b, h)


def test_longformer_globals_per_document():
    m = P.longformer_mask(B, H, L, 0.3, docs=DOCS)
    first = [0, 100 // A.BLOCK, 160 // A.BLOCK]  # blocks where row 0's documents start
    ends = [99 // A.BLOCK, 159 // A.BLOCK, NB - 1]  # their last blocks
    for s, e in zip(first, ends, strict=True):
        assert m[0, :, s:e + 1, s].all()


def probs_case(seed=0, docs=DOCS[:, :80], scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    q, k = (scale * torch.randn(2, 2, docs.shape[1], 8, generator=gen) for _ in range(2))
    return ex.attention_probs(q, k, docs=docs)


def brute_mass(probs, mask, block):
    p, m = probs.double().numpy(), mask.numpy()
    kept = total = 0.0
    Bn, Hn, Ln, _ = p.shape
    for b in range(Bn):
        for h in range(Hn):
            for t in range(Ln):
                for c in range(Ln):
                    total += p[b, h, t, c]
                    if m[b, h, t // block, c // block]:
                        kept += p[b, h, t, c]
    return kept / total


def test_mass_covered_matches_brute_force():
    probs = probs_case()
    nb = -(-probs.shape[-1] // A.BLOCK)
    gen = torch.Generator().manual_seed(1)
    mask = torch.rand(2, 2, nb, nb, generator=gen) < 0.5
    assert P.mass_covered(probs, mask) == pytest.approx(brute_mass(probs, mask, A.BLOCK),
                                                        rel=1e-5)
    full = torch.ones(2, 2, nb, nb, dtype=torch.bool)
    assert P.mass_covered(probs, full) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("mass", [0.8, 0.95])
def test_exposer_mask_covers_its_mass_per_query(mass):
    docs = DOCS[:, :80]
    probs = probs_case(seed=2, docs=docs)
    valid = torch.ones(docs.shape, dtype=torch.bool)
    a = ex.attention_sparsity(probs, ex.ExposerConfig(mass=mass), valid, docs)
    per_query = P.query_mass(probs, a["attn_block_mask"])
    assert (per_query >= mass - 1e-5).all()
    assert a["attn_block"] < 1.0  # the case is sparse enough to mean something


@pytest.fixture(scope="module")
def patterns_metrics():
    ops = OpsConfig(train_rows=4, predictor_steps=10, rounds=1, warmup=0, threads=1)
    case = ExposerCase(id="t", kind="pattern", model="opt-tiny", seq_len=64, batch=2,
                       mass=0.95, mlp_rel=0.05, mlp_block=64)
    from benchlab.long_exposure.measure import measure_pattern

    return case, measure_pattern(case, SimpleNamespace(ops=ops), Timer())


def test_small_study_lists(patterns_metrics):
    case, m = patterns_metrics
    n = m["layers"]
    assert n == 4
    for p in P.PATTERNS:
        for metric in ("density", "mass", "speedup"):
            v = m[f"{p}_{metric}"]
            assert len(v) == n and np.isfinite(v).all(), (p, metric)
            assert m[f"{p}_{metric}_mean"] == pytest.approx(sum(v) / n)
        assert all(0 < d <= 1 for d in m[f"{p}_density"])
        assert all(0 < x <= 1 + 1e-6 for x in m[f"{p}_mass"])
    assert all(x >= case.mass - 1e-5 for x in m["exposer_mass"])
    for name in ("longformer", "bigbird"):  # at the exposer's density, one block row's worth
        for d, target in zip(m[f"{name}_density"], m["exposer_density"], strict=True):
            assert abs(d - target) <= 2 / (case.seq_len // A.BLOCK + 1) + 1e-9


def test_the_report_plots_the_patterns(patterns_metrics, tmp_path):
    from benchlab.long_exposure.report_figures import patterns

    case, m = patterns_metrics
    rows = pd.DataFrame([{"id": "pattern[t]", "kind": "pattern", "case.model": case.model,
                          "case.seq_len": case.seq_len, "case.mass": case.mass, **m}])
    path = patterns(rows, tmp_path)
    assert path.name == "exp-ablation-attn-patterns.png" and path.stat().st_size > 0
    absent = patterns(rows.iloc[:0], tmp_path / "empty")  # no records: no placeholder image
    assert absent.name == "exp-ablation-attn-patterns" and absent.why
    assert not (tmp_path / "empty").exists()
