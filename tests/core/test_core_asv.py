"""The shared base of the asv classes (core.asv_suite): config at $BENCHLAB_SCALE, device and
threads from the environment, a Timer on that device.

    pytest tests/core/test_core_asv.py -q
"""

import pytest
import torch

from benchlab.core import experiments
from benchlab.core.asv_suite import Suite
from benchlab.core.errors import BenchlabError


@pytest.fixture(autouse=True)
def _keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_suite_reads_scale_threads_and_device_from_the_environment(monkeypatch):
    monkeypatch.setenv("BENCHLAB_SCALE", "small")
    monkeypatch.setenv("BENCHLAB_THREADS", "2")
    monkeypatch.setenv("BENCHLAB_DEVICE", "cpu")
    Base = Suite("lm_timing")
    assert Base.config == experiments.config("lm_timing", "small")
    assert Base.config != experiments.config("lm_timing", "tiny")
    assert (Base.device, Base.threads, torch.get_num_threads()) == ("cpu", 2, 2)
    timer = type("Bench", (Base,), {})().measurer()
    assert not hasattr(Base, "timer")  # asv would take it for its clock
    assert timer.device == "cpu" and timer.benchmark is None


def test_suite_defaults_to_tiny_and_one_cpu_thread(monkeypatch):
    for var in ("BENCHLAB_SCALE", "BENCHLAB_THREADS", "BENCHLAB_DEVICE"):
        monkeypatch.delenv(var, raising=False)
    Base = Suite("moe_routing")
    assert Base.config == experiments.config("moe_routing", "tiny")
    if not torch.cuda.is_available():
        assert (Base.device, Base.threads) == ("cpu", 1)


def test_unknown_experiment_or_scale_is_a_one_line_error(monkeypatch):
    with pytest.raises(BenchlabError, match="did you mean"):
        Suite("moe_routnig")
    monkeypatch.setenv("BENCHLAB_SCALE", "huge")
    with pytest.raises(BenchlabError, match="huge"):
        Suite("moe_routing")


def test_every_gated_ratio_has_an_asv_history(monkeypatch):
    """bench/asv/ratios.py tracks each gated ratio's (experiment, kind, metric), each class with
    its own setup_cache (asv keys the cache by source line), over the ratio's cases."""
    import importlib
    import inspect
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "bench" / "asv"))
    monkeypatch.delenv("BENCHLAB_SCALE", raising=False)
    ratios = importlib.import_module("ratios")
    classes = [c for c in vars(ratios).values()
               if inspect.isclass(c) and hasattr(c, "ratio") and hasattr(c, "setup_cache")]
    lines = {inspect.getsourcelines(c.setup_cache)[1] for c in classes}
    assert len(lines) == len(classes)
    tracked = {}
    for c in classes:
        r = ratios.declared(*c.ratio)
        tracked[(c.ratio[0], r.kind, r.metric)] = set(c.params)
    for exp in experiments.known():
        for name, r in getattr(experiments.load(exp), "RATIOS", {}).items():
            if r.gate:
                assert set(ratios.case_ids(exp, name)) <= tracked[(exp, r.kind, r.metric)], name
