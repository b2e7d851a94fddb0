"""SubLoRA benchmarks: sweep points (train + bound; at tiny scale a CI slice of the scratch study,
the w = 0 baseline and one short uniform run, which must bound >= 1 bit/token below it), the
subspace training step vs a plain LoRA step, and the bound evaluation. The full 36-run study is
`benchlab sublora run-all` (reports/sublora/).

    pytest bench/test_sublora.py -n 2 --bench-store /tmp/sublora/store.jsonl \
        --bench-reports /tmp/sublora/reports --benchmark-json /tmp/sublora/out.json
"""

import statistics

import pytest
import torch

from benchlab import sublora as sl
from benchlab.core import interleave, measure
from benchlab.core.stats import paired_ratio
from benchlab.sublora.data import load_corpus
from benchlab.sublora.evaluate import eval_bounds
from benchlab.sublora.sweep import cached_base, run_config, step_pair
from benchlab.sublora.train import build_model, train

pytestmark = pytest.mark.experiment("sublora")


@pytest.fixture(autouse=True, scope="module")
def one_thread_per_worker():
    """CPU runs use one torch thread per process (xdist spreads cases over the cores)."""
    before = torch.get_num_threads()
    if not torch.cuda.is_available():
        torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


_W0: dict = {}


def w0_bound(config, case, device) -> float:
    """The untrained (w = 0) bound of the case's d and seed (computed once per process)."""
    key = (case.d, case.seed)
    if key not in _W0:
        w0 = sl.SweepCase("w0", case.d, "w0", 0.5, case.seed)
        _W0[key] = sl.run_point(config, w0, device=device)["bound_value"]
    return _W0[key]


@pytest.mark.cases("sweep_cases")
def test_sweep(benchmark, case, config, device, record):
    metrics = measure(benchmark, lambda: sl.run_point(config, case, device=device), device,
                      warmup=0, rounds=1)
    record(**metrics)
    if case.mode == "w0":
        _W0[(case.d, case.seed)] = metrics["bound_value"]
    elif config.min_gain_over_w0:  # training in the subspace must move the bound
        gain = w0_bound(config, case, device) - metrics["bound_value"]
        assert gain >= config.min_gain_over_w0, f"{case.id}: only {gain:.3f} bits below w = 0"


@pytest.mark.cases("step_cases")
def test_train_step(benchmark, case, config, device, record):
    sub, sub_step, lora_step = step_pair(config, case.d, case.projector, device)
    measure(benchmark, sub_step, device, warmup=1, rounds=config.step_rounds)
    # side by side, interleaved, so load on a shared machine hits both alike
    t = interleave({"sub": sub_step, "lora": lora_step}, device, warmup=0,
                   rounds=config.step_rounds)
    t_sub, t_lora = t["sub"], t["lora"]
    ratio = paired_ratio(t_sub, t_lora)
    record(d=case.d, projector=case.projector, D=sub.D, step_ratio=ratio,
           subspace_step_ms=1e3 * statistics.median(t_sub),
           lora_step_ms=1e3 * statistics.median(t_lora), ratio_goal=1.5)


@pytest.mark.cases("bound_cases")
def test_bound_eval(benchmark, case, config, device, record):
    cfg = run_config(config, case)
    corpus = load_corpus(cfg)
    model, res = train(cfg, corpus=corpus, model=build_model(cfg, cached_base(cfg)),
                       device=device, progress=False)
    metrics = measure(benchmark, lambda: eval_bounds(model, corpus, cfg, device=device),
                      device, warmup=0, rounds=config.bound_rounds)
    record(d=case.d, mode=case.mode, bound_eval_seconds=metrics["eval_seconds"],
           train_seconds=res.seconds, bound_over_train=metrics["eval_seconds"] / res.seconds,
           eval_bound_value=metrics["bound_value"], s=metrics["s"],
           doc_tokens=metrics["inputs"]["doc_tokens"])
