"""Long Exposure operator, exposer and predictor benchmarks (the e2e ones: test_long_exposure.py).

    cd /work/main && pytest bench/test_long_exposure_ops.py --bench-store /tmp/le/store.jsonl \
        --bench-reports /tmp/le/reports --benchmark-json /tmp/le/out.json

test_op_mlp    exp-ablation-operator-mlp: block-sparse MLP forward + input grad vs dense
test_op_attn   exp-ablation-operator-attn: block-sparse attention forward + backward vs SDPA, eager
               (every point runs the operator, full masks too: shortcut=False)
test_exposer   exp-ablation-{attn,mlp}-sparsity: per-layer densities, per token vs unions
test_predictor_quality   predictor recall / precision on held-out rows
test_mlp_grain exp-ablation-mlp-grain: MLP density by block size / threshold, neurons reordered
Implementations of one case are timed side by side (core.timing.interleave) and their speedups
are medians of paired rounds (core.stats.paired_ratio); pytest-benchmark times the Long Exposure
implementation.
Metric names: benchlab.long_exposure.opcases docstring.
"""

import functools

import pytest
import torch

from benchlab.core import interleave, measure, threads
from benchlab.core.stats import medians, paired_ratio
from benchlab.long_exposure import exposer as ex
from benchlab.long_exposure import opcases as oc
from benchlab.long_exposure import ops_attn as A
from benchlab.long_exposure import ops_mlp as M
from benchlab.long_exposure import predictors as pr

pytestmark = pytest.mark.experiment("long_exposure")


def _fwd_bwd(fn, inputs, grad):
    def run():
        out = fn()
        torch.autograd.grad(out, inputs, grad)
    return run


@pytest.mark.cases.with_args(oc.op_mlp_cases)
def test_op_mlp(benchmark, case, config, device, seed, record):
    c, ops = case, oc.ops_config(config)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(c.tokens, c.d_model, generator=gen).to(device).requires_grad_(True)
    w1 = (torch.randn(c.ffn_dim, c.d_model, generator=gen) * c.d_model ** -0.5).to(device)
    w2 = (torch.randn(c.d_model, c.ffn_dim, generator=gen) * c.ffn_dim ** -0.5).to(device)
    b1, b2 = torch.zeros(c.ffn_dim, device=device), torch.zeros(c.d_model, device=device)
    gy = torch.randn(c.tokens, c.d_model, generator=gen).to(device)
    keep = M.random_keep(c.ffn_dim // c.block, c.sparsity, generator=gen).to(device)
    density = float(keep.float().mean())
    dense = _fwd_bwd(lambda: M.dense_mlp(x, w1, b1, w2, b2), x, gy)
    sparse = _fwd_bwd(lambda: M.block_sparse_mlp(x, w1, b1, w2, b2, keep, c.block), x, gy)
    with threads(ops.threads) as n_threads:
        ts = interleave({"dense": dense, "sparse": sparse}, device, warmup=ops.warmup,
                        rounds=ops.rounds)
        measure(benchmark, sparse, device, warmup=0, rounds=max(1, ops.rounds // 2))
    t = medians(ts)
    ideal = 1.0 / density
    speedup = paired_ratio(ts["dense"], ts["sparse"])
    record(t_dense=t["dense"], t_sparse=t["sparse"], speedup=speedup, ideal=ideal,
           efficiency=speedup / ideal, density=density, threads=n_threads)


@pytest.mark.cases.with_args(oc.op_attn_cases)
def test_op_attn(benchmark, case, config, device, seed, record):
    c, ops = case, oc.ops_config(config)
    gen = torch.Generator().manual_seed(seed)
    shape = (c.batch, c.heads, c.tokens, c.head_dim)
    q, k, v = (torch.randn(shape, generator=gen).to(device).requires_grad_(True)
               for _ in range(3))
    go = torch.randn(shape, generator=gen).to(device)
    mask = A.random_block_mask(c.batch, c.heads, c.tokens, c.sparsity, generator=gen,
                               device=device)
    qkv = (q, k, v)
    fns = {"sdpa": _fwd_bwd(lambda: A.sdpa_attention(q, k, v), qkv, go),
           "eager": _fwd_bwd(lambda: A.eager_attention(q, k, v), qkv, go),
           "sparse": _fwd_bwd(lambda: A.block_sparse_attention(q, k, v, mask, shortcut=False),
                              qkv, go)}
    with threads(ops.threads) as n_threads:
        ts = interleave(fns, device, warmup=ops.warmup, rounds=ops.rounds)
        with torch.no_grad():
            tsf = interleave({"sdpa": lambda: A.sdpa_attention(q, k, v),
                              "sparse": lambda: A.block_sparse_attention(q, k, v, mask,
                                                                         shortcut=False)},
                             device, warmup=ops.warmup, rounds=ops.rounds)
        measure(benchmark, fns["sparse"], device, warmup=0, rounds=max(1, ops.rounds // 2))
    t, tf = medians(ts), medians(tsf)
    record(t_sdpa=t["sdpa"], t_eager=t["eager"], t_sparse=t["sparse"],
           speedup_sdpa=paired_ratio(ts["sdpa"], ts["sparse"]),
           speedup_eager=paired_ratio(ts["eager"], ts["sparse"]),
           t_sdpa_fwd=tf["sdpa"], t_sparse_fwd=tf["sparse"],
           speedup_sdpa_fwd=paired_ratio(tsf["sdpa"], tsf["sparse"]),
           density=A.block_density(mask),
           threads=n_threads)


@functools.cache
def _model(name: str):
    from benchlab import zoo

    return zoo.load(name).eval()


def _means(metrics: dict) -> dict:
    return {f"{k}_mean": sum(v) / len(v) for k, v in metrics.items() if v}


@pytest.mark.cases.with_args(oc.exposer_cases)
def test_exposer(benchmark, case, config, device, record):
    c = case
    model = _model(c.model).to(device)
    ids = oc.corpus_rows(c.model, c.batch, c.seq_len).to(device)
    cfg = ex.ExposerConfig(mass=c.mass, mlp_block=c.mlp_block, mlp_rel=c.mlp_rel)
    with threads(oc.ops_config(config).threads):
        cap = ex.run_captured(model, ids)
        exposure = measure(benchmark, lambda: ex.expose_captured(cap, cfg), device, warmup=0,
                           rounds=1)
    m = exposure.metrics()
    record(**m, **_means(m), layers=len(exposure.layers))


@pytest.mark.cases.with_args(oc.mlp_grain_cases)
def test_mlp_grain(benchmark, case, config, device, record):
    """MLP sparsity by block size and threshold, plain and with neurons reordered from
    calibration rows (train split) and judged on held-out rows (val split)."""
    from benchlab.long_exposure import mlp_grain as G

    c, ops = case, oc.ops_config(config)
    model = _model(c.model)
    calib = oc.corpus_rows(c.model, ops.train_rows, c.seq_len, "train")
    held = oc.corpus_rows(c.model, c.batch, c.seq_len)
    with threads(ops.threads):
        out = measure(benchmark, lambda: G.grain_study(model, calib, held), device, warmup=0,
                      rounds=1)
    record(**out)


@pytest.mark.cases.with_args(oc.predictor_quality_cases)
def test_predictor_quality(benchmark, case, config, device, record):
    c = case
    model = _model(c.model)  # predictors train on CPU tensors
    rows = oc.corpus_rows(c.model, c.train_rows + c.test_rows, c.seq_len)
    cfg = pr.PredictorConfig(mass=c.mass, mlp_rel=c.mlp_rel, rank=c.rank, steps=c.steps)
    with threads(oc.ops_config(config).threads):
        preds = measure(benchmark, lambda: pr.train_predictors(model, rows[:c.train_rows],
                                                               mlp_block=c.mlp_block, cfg=cfg),
                        device, warmup=0, rounds=1)
        m = preds.evaluate(model, rows[c.train_rows:])
    record(**m, **_means(m), attn_recall_min=min(m["attn_recall"]),
           mlp_recall_min=min(m["mlp_recall"]), mlp_seq_recall_min=min(m["mlp_seq_recall"]),
           attn_threshold=preds.attn_thr, mlp_threshold=preds.mlp_thr,
           recall_target=cfg.recall_target)
