"""The smoke budget (`--bench-budget smoke`): every case kind of the paper scale with the fewest
cases, its sizes cut to one layer and passed on to the warm-up study's fresh processes."""

import json
import subprocess

import pytest

from benchlab import lm_timing as lmt
from benchlab.core import Timer
from benchlab.lm_timing import measure
from benchlab.lm_timing.model import SIZES


def counts(config) -> dict[str, int]:
    return {kind: len(cases(config)) for kind, (cases, _) in measure.KINDS.items()}


def test_paper_smoke_keeps_every_kind_with_fewer_cases():
    full, smoke = counts(lmt.CONFIGS["paper"]), counts(lmt.smoke(lmt.CONFIGS["paper"]))
    assert all(n >= 1 for n in smoke.values()), smoke
    assert all(smoke[k] <= full[k] for k in full) and sum(smoke.values()) < sum(full.values())


def test_paper_smoke_keeps_every_step_setting():
    paper = lmt.CONFIGS["paper"]
    full, cut = lmt.step_cases(paper), lmt.step_cases(lmt.smoke(paper))

    def settings(cases):
        return {(c.mode, c.precision, c.attn, c.compile) for c in cases}

    assert settings(cut) == settings(full)
    assert {(c.kind, c.a_precision) for c in lmt.pair_cases(lmt.smoke(paper))} == \
        {(c.kind, c.a_precision) for c in lmt.pair_cases(paper)}
    cfg = lmt.smoke(paper)
    assert all(cfg.sizes[s].num_layers == 1 and cfg.sizes[s].d_model == SIZES[s].d_model
               for s in SIZES)
    assert 0 in cfg.warmup_counts and any(w > 0 for w in cfg.warmup_counts)


@pytest.mark.parametrize("scale", list(lmt.CONFIGS))
def test_smoke_of_every_scale_is_a_config_of_it(scale):
    cfg = lmt.smoke(lmt.CONFIGS[scale])
    assert type(cfg) is lmt.Config and cfg.batch <= lmt.CONFIGS[scale].batch
    assert lmt.smoke(cfg) == cfg  # already the least work


def test_full_configs_measure_the_sizes_of_the_table():
    for cfg in lmt.CONFIGS.values():
        assert all(measure.dims(cfg, s) == SIZES[s] for s in SIZES)


def test_warmup_study_runs_the_configs_dimensions(monkeypatch):
    cfg = lmt.smoke(lmt.CONFIGS["paper"])
    case = lmt.warmup_cases(cfg)[0]
    seen = []

    def run(cmd, **kw):
        seen.append(cmd)
        out = cmd[cmd.index("--output") + 1]
        doc = {"status": "ok", "mean_step_time_ms": 1.0, "first_step_ms": 2.0, "num_params": 7}
        with open(out, "w") as f:
            json.dump(doc, f)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(measure.subprocess, "run", run)
    out = measure.measure_warmup(case, cfg, Timer(), 0)
    assert out["status"] == "ok" and len(seen) == len(case.counts) * case.repeats
    assert all("--num_layers=1" in cmd and f"--d_model={SIZES[case.size].d_model}" in cmd
               for cmd in seen)
