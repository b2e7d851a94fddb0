"""The Long Exposure report: every figure of the artifact by name, plus tables, from records only.

    benchlab report out.json     # rebuilds reports/long_exposure/ from a --benchmark-json file

Each figure and table picks its records by case kind, never by test name. A figure without
records is not written; figures.md lists every figure, its file or why it is absent. Figures
live in report_figures and report_grain, timing verdict tables in report_timing.
"""

from pathlib import Path

import pandas as pd

from benchlab.core.report import of_kind, records_frame, write_table

from . import report_figures
from .report_figures import SPARSITY_METRICS, NotWritten
from .report_grain import mlp_grain
from .report_timing import breakeven_table, doc_attn_table, step_table

FIGURES = ("exp-overall-end2end", "exp-overall-memory-opt-350m", "exp-overall-memory-opt-1.3b",
           "exp-ablation-attn-sparsity", "exp-ablation-attn-time", "exp-ablation-mlp-sparsity",
           "exp-ablation-mlp-time", "exp-ablation-breakdown", "exp-ablation-predictor",
           "exp-ablation-operator-attn", "exp-ablation-operator-mlp", "exp-scale-model",
           "exp-ablation-mlp-grain", "exp-ablation-kernels", "exp-scale-gpt2",
           "exp-ablation-attn-patterns")

TABLE_COLUMNS = {
    # per-document SDPA (sdpa_docs), the exact dense reference, first; verdicts: <kind>_timing
    "end2end": ["case.model", "case.method", "case.seq_len", "t_sdpa_docs", "t_le",
                "speedup_sdpa_docs", "t_sdpa_causal", "speedup_sdpa_causal", "t_sdpa",
                "speedup_sdpa", "t_eager", "speedup_eager", "density_attn", "density_doc",
                "density_mlp", "keeps_everything"],
    "memory": ["case.figure", "case.model", "case.method", "case.seq_len", "eager_total",
               "dense_total", "le_total", "oracle_total", "memory_ratio", "memory_ratio_eager",
               "memory_ratio_oracle", "activation_ratio", "le_density_attn", "le_density_mlp",
               "oracle_density_attn", "oracle_density_mlp", "dense_cuda_peak", "eager_cuda_peak",
               "le_cuda_peak", "oracle_cuda_peak"],
    "ablation": ["case.part", "case.seq_len", "t_sdpa_docs", "t_le", "speedup_sdpa_docs",
                 "t_sdpa", "speedup_sdpa", "density_attn", "density_doc", "density_mlp",
                 "keeps_everything"],
    "breakdown": ["case.method", "case.seq_len", "dense_forward", "dense_backward",
                  "dense_optimizer", "le_forward", "le_backward", "le_optimizer", "le_predictor",
                  "predictor_share", "speedup", "density_attn", "density_mlp"],
    "kernel": ["case.sparsity", "density_attn", "density_mlp"] + [
        m for k in ("sdd", "dsd", "fc1", "fc2") for m in (f"speedup_{k}", f"t_{k}_dense",
                                                          f"t_{k}_sparse")],
    "predictor": ["case.masks", "case.reorder", "density_attn", "density_mlp", "density_doc",
                  "keeps_everything", "final_loss", "max_gap_to_dense", "mean_gap_to_dense"],
    "op_mlp": ["case.sparsity", "density", "t_dense", "t_sparse", "speedup", "ideal", "efficiency"],
    "op_attn": ["case.sparsity", "density", "t_sdpa", "t_eager", "t_sparse", "speedup_sdpa",
                "speedup_eager", "speedup_sdpa_fwd"],
    "exposer": ["case.model", "case.seq_len"] + [f"{m}_mean" for m in SPARSITY_METRICS],
    "mlp_grain": ["case.model", "case.seq_len"] + [
        f"mlp_seq_union_t{t}_b{b}{r}" for t in (0, 5) for b in (1, 16, 64, 128)
        for r in ("", "_reordered") if b > 1 or not r] + ["mlp_token_t0", "mlp_token_t5",
                                                          "t_mlp_dense_mean"] + [
        f"{m}_mean" for t in (0, 5) for m in (f"t_mlp_column_t{t}", f"speedup_column_t{t}")
        + tuple(f"speedup_block_t{t}_b{b}{r}" for b in (64, 128) for r in ("", "_reordered"))]
    + [f"speedup_{k}_hi_max" for t in (0, 5) for k in (f"column_t{t}", *(
        f"block_t{t}_b{b}{r}" for b in (64, 128) for r in ("", "_reordered")))],
    "predictor_quality": ["case.model", "case.seq_len", "attn_recall_mean",
                               "attn_recall_min", "attn_precision_mean", "mlp_recall_mean",
                               "mlp_recall_min", "mlp_seq_recall_mean", "mlp_precision_mean",
                               "attn_density_pred_mean", "mlp_density_pred_mean"],
    "pattern": ["case.model", "case.seq_len", "case.mass", "doc_density"] + [
        f"{p}_{m}_mean" for p in ("exposer", "predictor", "longformer", "bigbird")
        for m in ("density", "mass", "speedup")],
    "gpt2": ["case.model", "case.method", "case.seq_len", "t_sdpa_docs", "t_le",
             "speedup_sdpa_docs", "t_sdpa_causal", "speedup_sdpa_causal", "t_sdpa", "t_eager",
             "speedup_sdpa", "speedup_eager", "density_attn", "density_doc", "density_mlp",
             "mlp_neuron_token_mean", "mlp_neuron_seq_union_mean", "mlp_token_mean",
             "mlp_seq_union_mean"],
    "scale": ["case.model", "case.seq_len", "t_sdpa_docs", "t_le", "speedup_sdpa_docs",
              "t_sdpa_causal", "speedup_sdpa_causal", "t_sdpa", "t_eager", "speedup_sdpa",
              "speedup_eager", "density_attn", "density_doc", "density_mlp", "keeps_everything"],
    # model_step's timings: report_timing.step_table; this one keeps its other results
    "model_step_memory": ["case.model", "case.init", "case.masks", "case.density",
                          "case.seq_len", "dispatch_dense_runs", "break_even_attn",
                          "break_even_mlp", "memory_ratio_sdpa_docs", "memory_ratio",
                          "memory_ratio_eager", "density_attn", "density_doc", "density_mlp",
                          "keeps_everything"],
}
TABLE_KINDS = {"model_step_memory": "model_step"}  # table name -> record kind, where they differ
VERDICT_TABLES = {"doc_attn": doc_attn_table, "doc_attn_breakeven": breakeven_table,
                  "model_step": lambda f: step_table(f, "model_step"),
                  **{f"{k}_timing": (lambda f, k=k: step_table(f, k))
                     for k in ("end2end", "scale", "ablation", "gpt2")}}


def report(records: list[dict], outdir) -> None:
    outdir = Path(outdir)
    frame = records_frame(records)
    made = [report_figures.end2end(frame, outdir), report_figures.memory(frame, outdir),
            report_figures.part_time(frame, outdir, "attn"),
            report_figures.part_time(frame, outdir, "mlp"),
            report_figures.breakdown(frame, outdir), report_figures.kernels(frame, outdir),
            report_figures.predictor_curves(frame, outdir), report_figures.scale(frame, outdir),
            report_figures.gpt2(frame, outdir), report_figures.patterns(frame, outdir),
            mlp_grain(frame, outdir)]
    for kind in ("attn", "mlp"):
        made += [report_figures.operator(frame, outdir, kind),
                 report_figures.sparsity(frame, outdir, kind)]
    figures_table(made, outdir)
    for name, cols in TABLE_COLUMNS.items():
        rows = of_kind(frame, TABLE_KINDS.get(name, name))
        if rows.empty:
            continue
        keep = ["id"] + [c for c in cols if c in rows]
        write_table(rows[keep], outdir, name)
    for name, build in VERDICT_TABLES.items():
        table = build(frame)
        if not table.empty:
            write_table(table, outdir, name)


def figures_table(made: list, outdir) -> None:
    """figures.md (.csv, .tex): every figure, its file, or why it is not written (NotWritten)."""
    flat = [x for m in made for x in (m if isinstance(m, list) else [m])]
    rows = [{"figure": m.name, "file": "", "why not written": m.why} if isinstance(m, NotWritten)
            else {"figure": Path(m).stem, "file": Path(m).name, "why not written": ""}
            for m in flat if m is not None]
    write_table(pd.DataFrame(rows, columns=["figure", "file", "why not written"]), outdir,
                "figures")
