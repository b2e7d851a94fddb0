"""The Long Exposure report: every artifact figure by name from synthetic records, tables with
the measured ratios, identical bytes on a rebuild, and all figures even with no records."""

import dataclasses

from benchlab.core import to_jsonable
from benchlab.long_exposure import (
    CONFIGS,
    ablation_cases,
    breakdown_cases,
    end2end_cases,
    memory_cases,
    predictor_cases,
    scale_cases,
)
from benchlab.long_exposure.opcases import (
    exposer_cases,
    kernel_cases,
    op_attn_cases,
    op_mlp_cases,
    predictor_quality_cases,
)
from benchlab.long_exposure.report import FIGURES, report

TIME = {"mean": 0.1, "stddev": 0.01, "median": 0.1, "min": 0.09, "max": 0.12, "iqr": 0.01,
        "rounds": 3}


def rec(kind, case, metrics):
    return {"experiment": "long_exposure", "case": f"{kind}[{case.id}]", "kind": kind,
            "config_hash": "x",
            "code_version": "v", "scale": "tiny",
            "config": {"case": to_jsonable(dataclasses.asdict(case))}, "metrics": metrics,
            "time": TIME}


def synthetic_records():
    c = CONFIGS["tiny"]
    out = []
    for i, case in enumerate(end2end_cases(c) + scale_cases(c)):
        t = {"t_eager": 0.3 + i / 100, "t_sdpa": 0.2, "t_le": 0.1, "density_attn": 0.4,
             "density_mlp": 0.6}
        t.update(speedup_sdpa=t["t_sdpa"] / t["t_le"], speedup_eager=t["t_eager"] / t["t_le"])
        out.append(rec("end2end" if case.kind == "end2end" else "scale", case, t))
    for case in memory_cases(c):
        m = {f"{mode}_{k}": v for mode, s in (("eager", 1.5), ("dense", 1.0), ("le", 0.7),
                                              ("oracle", 0.6))
             for k, v in (("weights", 4e6), ("grads_optimizer", 1e6), ("activations", 8e6 * s),
                          ("total", 4e6 + 1e6 + 8e6 * s))}
        out.append(rec("memory", case, {**m, "memory_ratio": 0.8}))
    for case in ablation_cases(c):
        out.append(rec("ablation", case, {"t_sdpa": 0.2, "t_le": 0.15,
                                               "speedup_sdpa": 1.33}))
    for case in breakdown_cases(c):
        out.append(rec("breakdown", case, {f"{m}_{p}": 0.05 for m in ("dense", "le") for p in
                                           ("forward", "backward", "optimizer", "predictor")}))
    for case in kernel_cases(c):
        out.append(rec("kernel", case, {f"speedup_{k}": 1 + case.sparsity
                                         for k in ("sdd", "dsd", "fc1", "fc2")}))
    for j, case in enumerate(predictor_cases(c)):
        out.append(rec("predictor", case, {
            "losses": [5.0 - 0.1 * s + 0.05 * j for s in range(12)], "final_loss": 3.9,
            "max_gap_to_dense": 0.01 * j, "density": 0.5}))
    for case in op_mlp_cases(c):
        d = 1.0 - case.sparsity
        out.append(rec("op_mlp", case, {"t_dense": 0.01, "t_sparse": 0.01 * d + 0.001,
                                             "speedup": 1 / (d + 0.1), "ideal": 1 / d,
                                             "efficiency": d / (d + 0.1), "density": d}))
    for case in op_attn_cases(c):
        d = 1.0 - 0.9 * case.sparsity
        out.append(rec("op_attn", case, {"t_sdpa": 0.01, "t_eager": 0.02, "t_sparse": 0.01 * d,
                                              "speedup_sdpa": 1 / d, "speedup_eager": 2 / d,
                                              "density": d}))
    layers = [0.9, 0.7, 0.5, 0.3]
    for case in exposer_cases(c):
        out.append(rec("exposer", case, {m: [x * f for x in layers] for m, f in (
            ("attn_token", 0.2), ("attn_block", 0.4), ("attn_pooled", 0.3),
            ("attn_head_union", 0.8), ("attn_batch_union", 0.9), ("mlp_nonzero", 0.1),
            ("mlp_token", 0.2), ("mlp_seq_union", 0.9), ("mlp_batch_union", 1.0))}))
    for case in predictor_quality_cases(c):
        out.append(rec("predictor_quality", case, {"attn_recall_mean": 0.95,
                                                        "mlp_recall_mean": 0.97}))
    return out


def test_report_writes_every_figure_and_tables_deterministically(tmp_path):
    recs = synthetic_records()
    report(recs, tmp_path / "a")
    report(list(reversed(recs)), tmp_path / "b")
    a = tmp_path / "a"
    assert set(FIGURES) <= {p.stem for p in a.glob("*.png")}
    for name in ("end2end", "memory", "op_mlp", "op_attn", "exposer", "predictor",
                 "scale", "breakdown", "ablation", "predictor_quality", "kernel"):
        assert (a / f"{name}.md").exists() and (a / f"{name}.csv").exists(), name
    header = (a / "end2end.csv").read_text().splitlines()[0]
    assert "speedup_sdpa" in header and "speedup_eager" in header
    assert "dense_optimizer" in (a / "breakdown.csv").read_text().splitlines()[0]
    for path in sorted(a.iterdir()):  # same records, any order -> same bytes
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


def test_every_figure_even_without_records(tmp_path):
    report([], tmp_path)
    assert set(FIGURES) <= {p.stem for p in tmp_path.glob("*.png")}
