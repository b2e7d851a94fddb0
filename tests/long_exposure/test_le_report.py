"""The Long Exposure report: every artifact figure by name from synthetic records, tables with
the measured ratios, identical bytes on a rebuild, no placeholder figure (figures.md says why one
is absent), every figure's title naming the scale, the model (or operator shape) and the
densities that ran, and the timing verdict tables (a `baseline` column, per_document first)."""

import dataclasses
import importlib

import numpy as np

from benchlab.core import to_jsonable
from benchlab.long_exposure import (
    CONFIGS,
    ablation_cases,
    breakdown_cases,
    end2end_cases,
    gpt2_cases,
    memory_cases,
    predictor_cases,
    scale_cases,
)
from benchlab.long_exposure.opcases import (
    exposer_cases,
    kernel_cases,
    mlp_grain_cases,
    op_attn_cases,
    op_mlp_cases,
    pattern_cases,
    predictor_quality_cases,
)
from benchlab.long_exposure.report import FIGURES, report

# the modules whose figure functions save (the package exports the function report())
FIGURE_MODULES = [importlib.import_module(f"benchlab.long_exposure.{m}")
                  for m in ("report_figures", "report_grain")]

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
    dens = {"density_attn": 0.41, "density_doc": 0.31, "density_mlp": 0.61}
    for i, case in enumerate(end2end_cases(c) + scale_cases(c) + gpt2_cases(c)):
        t = {"t_eager": 0.3 + i / 100, "t_sdpa": 0.2}
        if getattr(case, "method", "") not in c.dense_methods:  # prefix: dense modes only
            t.update(t_le=0.1, **dens)
            t.update(speedup_sdpa=t["t_sdpa"] / t["t_le"],
                     speedup_eager=t["t_eager"] / t["t_le"])
        out.append(rec(case.kind, case, t))
    for case in memory_cases(c):
        m = {f"{mode}_{k}": v for mode, s in (("eager", 1.5), ("dense", 1.0), ("le", 0.7),
                                              ("oracle", 0.6))
             for k, v in (("weights", 4e6), ("grads_optimizer", 1e6), ("activations", 8e6 * s),
                          ("total", 4e6 + 1e6 + 8e6 * s), ("cuda_peak", 2e7 * s))}
        d = {"le_density_attn": 0.42, "le_density_mlp": 0.92, "oracle_density_attn": 0.32,
             "oracle_density_mlp": 0.82}
        out.append(rec("memory", case, {**m, **d, "memory_ratio": 0.8}))
    for case in ablation_cases(c):
        out.append(rec("ablation", case, {"t_sdpa": 0.2, "t_le": 0.15,
                                               "speedup_sdpa": 1.33, **dens}))
    for case in breakdown_cases(c):
        modes = ("dense",) if case.method in c.dense_methods else ("dense", "le")
        out.append(rec("breakdown", case, {**{f"{m}_{p}": 0.05 for m in modes for p in
                                              ("forward", "backward", "optimizer", "predictor")},
                                           **dens}))
    for case in kernel_cases(c):
        out.append(rec("kernel", case, {f"speedup_{k}": 1 + case.sparsity
                                         for k in ("sdd", "dsd", "fc1", "fc2")}))
    for j, case in enumerate(predictor_cases(c)):
        out.append(rec("predictor", case, {
            "losses": [5.0 - 0.1 * s + 0.05 * j for s in range(12)], "final_loss": 3.9,
            "max_gap_to_dense": 0.01 * j, "density": 0.5,
            **({} if case.masks == "dense" else dens)}))
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
    for case in pattern_cases(c):
        out.append(rec("pattern", case, {"doc_density": 0.31, **{
            f"{p}_{m}": [x * f for x in layers] for p in ("exposer", "predictor", "longformer",
                                                          "bigbird")
            for m, f in (("mass", 1.0), ("density", 0.5), ("speedup", 2.0))}}))
    for case in mlp_grain_cases(c):
        g = {f"mlp_seq_union_t{t}_b{b}{r}": 0.7 if b == 1 else (0.9 if r else 1.0)
             for t in (0, 1, 3, 5) for b in (1, 16, 32, 64, 128) for r in ("", "_reordered")
             if b > 1 or not r}
        g.update({f"mlp_token_t{t}": 0.3 for t in (0, 1, 3, 5)})
        times = {"t_mlp_dense": [0.003] * 4}
        for t in (0, 1, 3, 5):
            times[f"t_mlp_column_t{t}"] = [0.0025 + t / 1e4] * 4
            times.update({f"t_mlp_block_t{t}_b{b}{r}": [0.0031 if r else 0.0029] * 4
                          for b in (64, 128) for r in ("", "_reordered")})
        for k, v in list(times.items()):
            times[f"{k}_mean"] = float(np.mean(v))
            if k != "t_mlp_dense":
                name = k.removeprefix("t_mlp_")
                times[f"speedup_{name}"] = [0.003 / x for x in v]
                times[f"speedup_{name}_mean"] = 0.003 / float(np.mean(v))
        out.append(rec("mlp_grain", case, {**g, **times}))
    return out


# tiny runs one memory model, opt-tiny, standing in for the artifact's opt-350m panel
WRITTEN = (set(FIGURES) - {"exp-overall-memory-opt-350m", "exp-overall-memory-opt-1.3b"}) | {
    "exp-overall-memory-opt-tiny"}


def test_report_writes_every_figure_and_tables_deterministically(tmp_path):
    recs = synthetic_records()
    report(recs, tmp_path / "a")
    report(list(reversed(recs)), tmp_path / "b")
    a = tmp_path / "a"
    assert {p.stem for p in a.glob("*.png")} == WRITTEN
    figures = (a / "figures.md").read_text()
    assert "exp-overall-memory-opt-1.3b" in figures and "no memory records" in figures
    for name in ("end2end", "memory", "op_mlp", "op_attn", "exposer", "predictor",
                 "scale", "breakdown", "ablation", "predictor_quality", "kernel"):
        assert (a / f"{name}.md").exists() and (a / f"{name}.csv").exists(), name
    header = (a / "end2end.csv").read_text().splitlines()[0]
    assert "speedup_sdpa" in header and "speedup_eager" in header
    assert "dense_optimizer" in (a / "breakdown.csv").read_text().splitlines()[0]
    for path in sorted(a.iterdir()):  # same records, any order -> same bytes
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


def test_no_placeholder_figure_without_records(tmp_path):
    """No records: no image at all; figures.md names every artifact figure and why it is
    absent."""
    report([], tmp_path)
    assert not list(tmp_path.glob("*.png"))
    table = (tmp_path / "figures.csv").read_text().splitlines()
    assert table[0] == "figure,file,why not written"
    assert {line.split(",")[0] for line in table[1:]} == set(FIGURES)
    assert all(line.split(",", 2)[2] for line in table[1:])


def figure_titles(monkeypatch, records, outdir) -> dict:
    """{figure name: its suptitle and axes titles, joined} for every figure report() saves."""
    titles, save = {}, FIGURE_MODULES[0].save_figure

    def keep(fig, out, name, **kw):
        texts = [fig._suptitle.get_text() if fig._suptitle else ""]
        texts += [ax.get_title() for ax in fig.axes]
        titles[name] = " | ".join(texts)
        return save(fig, out, name, **kw)

    for module in FIGURE_MODULES:
        monkeypatch.setattr(module, "save_figure", keep)
    report(records, outdir)
    return titles


SHAPE_FIGURES = {"exp-ablation-kernels", "exp-ablation-operator-attn",
                 "exp-ablation-operator-mlp"}


def test_every_figure_names_scale_model_and_densities(monkeypatch, tmp_path):
    recs = synthetic_records()
    small = [{**r, "scale": "small"} for r in recs if r["kind"] == "mlp_grain"]
    titles = figure_titles(monkeypatch, recs, tmp_path)
    written = titles
    assert set(written) == WRITTEN  # tiny has no 1.3b panel: not written
    for name, text in written.items():
        assert "tiny scale" in text, (name, text)
        if name in SHAPE_FIGURES:
            assert "d=768" in text or "12 heads of 64" in text, (name, text)
        else:
            assert ("opt-tiny" if name != "exp-scale-gpt2" else "gpt2-tiny") in text, name
    for name in ("exp-overall-end2end", "exp-scale-model", "exp-ablation-breakdown",
                 "exp-ablation-attn-time", "exp-ablation-mlp-time", "exp-scale-gpt2",
                 "exp-ablation-predictor"):
        assert "attn 0.41" in written[name] and "mlp 0.61" in written[name], name
    mem = written["exp-overall-memory-opt-tiny"]
    assert "stands in for the artifact's exp-overall-memory-opt-350m" in mem, mem
    assert "LE (predicted) kept attn 0.42, mlp 0.92" in mem, mem
    assert "LE-optimal (oracle) kept attn 0.32, mlp 0.82" in mem and "CUDA" in mem, mem
    assert "documents keep 0.31" in written["exp-ablation-attn-patterns"]
    assert "threshold 5%" in written["exp-ablation-mlp-grain"]
    # two scales in one run: the title says both
    both = figure_titles(monkeypatch, [r for r in recs if r["kind"] == "mlp_grain"] + small,
                         tmp_path / "both")
    assert "tiny/small scale" in both["exp-ablation-mlp-grain"]


def test_memory_table_has_cuda_peaks_only_when_recorded(tmp_path):
    recs = synthetic_records()
    report(recs, tmp_path / "cuda")
    assert "le_cuda_peak" in (tmp_path / "cuda" / "memory.csv").read_text().splitlines()[0]
    cpu = [{**r, "metrics": {k: v for k, v in r["metrics"].items() if "cuda" not in k}}
           for r in recs]
    report(cpu, tmp_path / "cpu")
    assert "cuda_peak" not in (tmp_path / "cpu" / "memory.csv").read_text()
    grain = (tmp_path / "cpu" / "mlp_grain.csv").read_text().splitlines()[0]
    assert "speedup_column_t5_mean" in grain and "t_mlp_dense_mean" in grain
