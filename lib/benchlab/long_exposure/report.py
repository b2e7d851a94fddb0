"""The Long Exposure report: every figure of the artifact by name, plus tables, from records only.

    benchlab report out.json     # rebuilds reports/long_exposure/ from a --benchmark-json file

Each figure and table picks its records by case kind (the package's `<kind>_cases`: end2end,
memory, ablation, breakdown, predictor, scale, model_step; and opcases' op_mlp, op_attn,
exposer, predictor_quality), never by test name; metric names are the package's `METRICS`.
A figure without records is still written, saying so, so the set of files is the same whatever
ran. Every other figure's title names the scale and the model(s) (or, for the operator and kernel
figures, the shape) that ran (`run_label`) and the densities LE ran at (`density_label`).

Figures live in report_figures (and report_grain for exp-ablation-mlp-grain); this module keeps
the figure names, the tables and `report(records, outdir)`.
"""

from pathlib import Path

from benchlab.core.report import of_kind, records_frame, write_table

from .report_figures import (
    SPARSITY_METRICS,
    breakdown,
    density_label,
    end2end,
    gpt2,
    kernels,
    le_label,
    memory,
    operator,
    part_time,
    patterns,
    predictor_curves,
    run_label,
    scale,
    sparsity,
)
from .report_grain import mlp_grain

__all__ = ["FIGURES", "TABLE_COLUMNS", "report", "breakdown", "density_label", "end2end", "gpt2",
           "kernels", "le_label", "memory", "mlp_grain", "operator", "part_time", "patterns",
           "predictor_curves", "run_label", "scale", "sparsity"]

FIGURES = ("exp-overall-end2end", "exp-overall-memory-opt-350m", "exp-overall-memory-opt-1.3b",
           "exp-ablation-attn-sparsity", "exp-ablation-attn-time", "exp-ablation-mlp-sparsity",
           "exp-ablation-mlp-time", "exp-ablation-breakdown", "exp-ablation-predictor",
           "exp-ablation-operator-attn", "exp-ablation-operator-mlp", "exp-scale-model",
           "exp-ablation-mlp-grain", "exp-ablation-kernels", "exp-scale-gpt2",
           "exp-ablation-attn-patterns")

TABLE_COLUMNS = {
    "end2end": ["case.model", "case.method", "case.seq_len", "t_eager", "t_sdpa", "t_le",
                     "speedup_sdpa", "speedup_eager", "density_attn", "density_doc",
                     "density_mlp", "keeps_everything"],
    "memory": ["case.figure", "case.model", "case.method", "case.seq_len", "eager_total",
               "dense_total", "le_total", "oracle_total", "memory_ratio", "memory_ratio_eager",
               "memory_ratio_oracle", "activation_ratio", "le_density_attn", "le_density_mlp",
               "oracle_density_attn", "oracle_density_mlp", "dense_cuda_peak", "eager_cuda_peak",
               "le_cuda_peak", "oracle_cuda_peak"],
    "ablation": ["case.part", "case.seq_len", "t_sdpa", "t_le", "speedup_sdpa", "density_attn",
                 "density_doc", "density_mlp", "keeps_everything"],
    "breakdown": ["case.method", "case.seq_len", "dense_forward", "dense_backward",
                  "dense_optimizer", "le_forward", "le_backward", "le_optimizer", "le_predictor",
                  "predictor_share", "speedup", "density_attn", "density_mlp"],
    "kernel": ["case.sparsity", "density_attn", "density_mlp"] + [
        f"{m}" for k in ("sdd", "dsd", "fc1", "fc2")
        for m in (f"speedup_{k}", f"t_{k}_dense", f"t_{k}_sparse")],
    "predictor": ["case.masks", "case.reorder", "density_attn", "density_mlp", "density_doc",
                  "keeps_everything", "final_loss", "max_gap_to_dense", "mean_gap_to_dense"],
    "op_mlp": ["case.sparsity", "density", "t_dense", "t_sparse", "speedup", "ideal",
                    "efficiency"],
    "op_attn": ["case.sparsity", "density", "t_sdpa", "t_eager", "t_sparse",
                     "speedup_sdpa", "speedup_eager", "speedup_sdpa_fwd"],
    "exposer": ["case.model", "case.seq_len"] + [f"{m}_mean" for m in
                                                      SPARSITY_METRICS["attn"] +
                                                      SPARSITY_METRICS["mlp"]],
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
    "gpt2": ["case.model", "case.method", "case.seq_len", "t_sdpa", "t_eager", "t_le",
             "speedup_sdpa", "speedup_eager", "density_attn", "density_doc", "density_mlp",
             "mlp_neuron_token_mean", "mlp_neuron_seq_union_mean", "mlp_token_mean",
             "mlp_seq_union_mean"],
    "scale": ["case.model", "case.seq_len", "t_sdpa", "t_eager", "t_le", "speedup_sdpa",
                   "speedup_eager", "density_attn", "density_doc", "density_mlp",
                   "keeps_everything"],
    # case.init=random: untrained model; case.masks=synthetic: random blocks at case.density
    "model_step": ["case.model", "case.init", "case.masks", "case.density", "case.seq_len",
                        "t_eager", "t_sdpa", "t_sdpa_docs", "t_le", "speedup_sdpa",
                        "speedup_sdpa_docs", "speedup_eager", "t_le_dispatch",
                        "dispatch_speedup_sdpa", "dispatch_speedup_sdpa_docs",
                        "dispatch_dense_runs", "break_even_attn", "break_even_mlp",
                        "memory_ratio", "memory_ratio_sdpa_docs", "memory_ratio_eager",
                        "density_attn", "density_doc", "density_mlp", "keeps_everything"],
}


def report(records: list[dict], outdir) -> None:
    outdir = Path(outdir)
    frame = records_frame(records)
    end2end(frame, outdir)
    memory(frame, outdir)
    part_time(frame, outdir, "attn")
    part_time(frame, outdir, "mlp")
    breakdown(frame, outdir)
    kernels(frame, outdir)
    predictor_curves(frame, outdir)
    scale(frame, outdir)
    gpt2(frame, outdir)
    patterns(frame, outdir)
    mlp_grain(frame, outdir)
    for kind in ("attn", "mlp"):
        operator(frame, outdir, kind)
        sparsity(frame, outdir, kind)
    for kind, cols in TABLE_COLUMNS.items():
        rows = of_kind(frame, kind)
        if rows.empty:
            continue
        keep = ["id"] + [c for c in cols if c in rows]
        write_table(rows[keep], outdir, kind)
