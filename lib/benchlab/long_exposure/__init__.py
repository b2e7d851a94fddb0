"""Long Exposure (SC'24): sparse parameter-efficient fine-tuning of OPT by exposing, predicting
and skipping the sparsity a whole sequence hides ("shadowy sparsity").

    pytest bench/test_long_exposure.py bench/test_long_exposure_ops.py --bench-scale tiny
    benchlab long-exposure finetune --model opt-tiny --method lora --mode le --seq-len 512 \
        --steps 20 --out runs/lora-le
    benchlab long-exposure attn-study --seq-len 2048 --out reports/long_exposure

Modules: operators (ops_attn, ops_mlp, flex), sparsity measured (exposer) and predicted
(predictors, masks), the patched OPT / GPT-2 layers (patch, documents, peft_methods),
fine-tuning (e2e, finetune, trainer, accuracy, table4), setups, measure (`measure_<kind>(case,
config, timer)`) and its helpers, report (report_*). The operator cases (opcases) read
Config.ops. Paper cases run on the published weights (--bench-models DIR, $BENCHLAB_MODELS);
`requires` skips a case whose weights are absent. `smoke(config)` is --bench-budget smoke:

    benchlab zoo paper-shapes /tmp/paper-models --layers 1
    pytest bench/test_long_exposure.py bench/test_long_exposure_ops.py --bench-scale paper \
        --bench-budget smoke --bench-models /tmp/paper-models --bench-threads 1
"""

from dataclasses import dataclass

from ..core.ratios import Ratio
from .opcases import (
    SPARSITIES,
    OpsConfig,
    exposer_cases,
    kernel_cases,
    op_attn_cases,
    op_mlp_cases,
    predictor_quality_cases,
    short_name,
)
from .report import report

# Result metrics and tolerances for `benchlab compare` (core.compare): 0 exact, a float relative,
# (rel, abs); None for times and speed ratios, which are not results. Densities, recalls and
# losses come from thresholded float32 compute: a block or two may flip across CPU models.
METRICS = {
    "t_*": None, "speedup*": None, "efficiency": None, "predictor_share": None,
    "dense_forward": None, "dense_backward": None, "dense_predictor": None, "le_forward": None,
    "le_backward": None, "le_predictor": None, "dispatch_*": None, "dense_optimizer": None,
    "le_optimizer": None, "dense_step": None, "le_step": None,
    "threads": 0, "tokens": 0, "layers": 0, "recall_target": 0, "keeps_everything": 0,
    "init": 0, "masks": 0,  # model_step: the base model's init and where the masks came from
    "documents_per_row": 1e-9, "break_even_*": None,
    # doc_attn (attn_study.py): the row's documents, the layer and shape the masks came from,
    # the swept densities that fit inside the documents; rounds and the float64 check are not
    # results
    "documents": 0, "layer": 0, "heads": 0, "head_dim": 0, "grid_ran": 0, "rounds": None,
    "max_abs_error": None,
    "*_activations": 0, "*_weights": 0, "*_grads_optimizer": 0, "*_total": 0,
    "memory_ratio*": 1e-9, "activation_ratio*": 1e-9, "*_cuda_peak": None,
    # LE with predicted masks saves what its masks keep: the attention predictors train on the
    # machine (below), so its memory gets 2% and its densities 0.05; the oracle masks (the
    # exposer's) and every dense mode stay exact
    "le_activations": 0.02, "le_total": 0.02, "memory_ratio": 0.02, "memory_ratio_eager": 0.02,
    "activation_ratio": 0.02, "activation_ratio_eager": 0.02, "le_density_*": (0, 0.05),
    "oracle_density_*": (0, 0.02),
    # The attention predictors train on the machine (300 float32 Adam steps), and the validation
    # threshold is a discrete pick: across ISAs (AVX-512, ATEN_CPU_CAPABILITY=avx2 and =default
    # with MKL_CBWR) one layer's threshold spans 0.024-0.098, its recall 0.937-0.979 and its
    # predicted density 0.869-0.900; training in float64 narrows but does not close that.
    "attn_recall*": (0, 0.05), "attn_precision*": (0, 0.05), "attn_density_pred*": (0, 0.05),
    "attn_threshold": (0, 0.1),
    # Fig 9 (patterns.py): operator speedups are times; the predictor's mask is trained on the
    # machine (as above), the exposer's, Longformer's and BigBird's follow the float32 captures
    "*_speedup*": None, "predictor_density*": (0, 0.05), "predictor_mass*": (0, 0.05),
    "exposer_*": (0, 0.02), "longformer_*": (0, 0.02), "bigbird_*": (0, 0.02),
    "doc_density": (0, 0.02),
    # Fig 13 (gpt2 records, setups.mlp_activity): the GELU MLP's activity on the step's rows,
    # per layer and _mean, from float32 activations against a relative threshold
    "mlp_neuron_token*": (0, 0.02), "mlp_neuron_seq_union*": (0, 0.02), "mlp_token*": (0, 0.02),
    "mlp_seq_union*": (0, 0.02),
    "attn_*": (0, 0.02), "mlp_*": (0, 0.02), "density*": (0, 0.02), "ideal": (0.05, 0.02),
    "final_loss": 1e-3, "losses": 1e-3, "*_gap_to_dense": (0.05, 1e-3),
    "layer_density_*": (0, 0.02),  # model_step: per layer, as the densities
}


# Speed ratios tracked across commits (core.ratios). Shown, not gated: the block-sparse MLP's
# efficiency against its ideal 1/density moves from 0.72 to 0.92 between CPU models at 90%
# sparsity, and the LE step against dense SDPA from 0.6 to 1.4 (a drift as large as a regression).
RATIOS = {
    "mlp_vs_ideal": Ratio("op_mlp", "efficiency", direction="higher", gate=False,
                          contender="block-sparse MLP", reference="dense MLP / density"),
    "step_vs_sdpa": Ratio("end2end", "speedup_sdpa", direction="higher", gate=False,
                          contender="LE fine-tuning step", reference="dense step, SDPA"),
}


def _hub_model(case) -> str | None:
    """The paper spec (hub weights) a case runs on, else None."""
    from .. import zoo

    name = getattr(case, "model", None)
    return name if name in zoo.MODELS and zoo.spec(name).hub_id is not None else None


def inputs(case, config) -> dict[str, str]:
    """sha256 of the case's pinned zoo model, tokenizer and corpus; for a paper spec also
    zoo.weights_identity (other weights, e.g. paper-shaped ones, rerun exactly its cases)."""
    from .. import zoo
    from ..core.errors import BenchlabError

    out = zoo.artifact_inputs(getattr(case, "model", None) or getattr(config, "model", None))
    hub = _hub_model(case)
    if hub is not None:
        try:
            out.update(zoo.weights_identity(hub))
        except BenchlabError:  # absent offline: `requires` skips the case; the key says so
            out[f"weights:{zoo.spec(hub).hub_id}"] = "absent"
    return out


def requires(case, config) -> str | None:
    """zoo.resolve's reason when the case's paper weights are not available, else None."""
    from .. import zoo
    from ..core.errors import BenchlabError

    hub = _hub_model(case)
    if hub is None:
        return None
    try:
        zoo.resolve(hub)
    except BenchlabError as e:
        return str(e)
    return None


__all__ = ["METRICS", "RATIOS", "inputs", "requires", "smoke", "CONFIGS", "Config", "report",
           "end2end_cases", "memory_cases", "ablation_cases", "breakdown_cases",
           "predictor_cases", "scale_cases",
           "gpt2_cases", "model_step_cases", "OpsConfig", "exposer_cases", "kernel_cases",
           "op_attn_cases", "op_mlp_cases", "predictor_quality_cases"]


# exp-ablation-predictor curves, (masks, reorder): random masks on a part only where that part's
# predicted masks can drop blocks, else the curve repeats another one. The tiny and small OPTs as
# trained keep every 64-neuron MLP block (MLP density 1.0: random_mlp would be the predicted
# curve and random the random_attn one), so their random masks run on the neuron-reordered copy
# only (MLP 0.93 at tiny; its attention is the base model's, so one random_attn curve covers
# both); a pretrained OPT's ReLU MLP is sparse as it is (paper: every curve).
CURVES_ALL = (("dense", False), *((m, r) for r in (False, True) for m in
                                  ("predicted", "random", "random_attn", "random_mlp")))
CURVES_DENSE_MLP = (("dense", False), ("predicted", False), ("predicted", True),
                    ("random", True), ("random_attn", True), ("random_mlp", True))


@dataclass(frozen=True, kw_only=True)
class Config:
    model: str  # the model of the end-to-end, ablation and predictor experiments
    seq_lens: tuple[int, ...]  # end-to-end sequence lengths L (packed rows, no padding)
    methods: tuple[str, ...]  # PEFT methods of exp-overall-end2end / memory
    batch_size: int  # packed rows per step
    rounds: int  # timed rounds per step measurement; a timed claim needs >= 10 (tiny's 3:
    # its <kind>_timing tables say "not shown", keeping tiny CI short)
    warmup: int
    memory_models: tuple[tuple[str, str], ...]  # (artifact figure suffix, zoo model): one
    # panel each, distinct models (a scale with one OPT model has one panel)
    memory_seq_lens: tuple[int, ...]  # exp-overall-memory-*: the sequence-length sweep
    scale_models: tuple[str, ...]  # exp-scale-model, smallest first
    scale_seq_len: int
    gpt2_models: tuple[str, ...]  # exp-scale-gpt2 (Fig 13): every method, at scale_seq_len
    ablation_seq_lens: tuple[int, ...]
    curve_steps: int  # fine-tuning steps of the loss-curve experiments (exp-ablation-predictor)
    curve_seq_len: int
    curves: tuple[tuple[str, bool], ...]  # (masks, reorder) of those curves (CURVES_*)
    lr: float
    n_records: int  # seeded E2E-style records generated for training
    predictor_rows: int  # packed rows (of each L) used to train the predictors
    ops: OpsConfig  # operator / exposer / predictor benchmarks (opcases.py)
    threads: int | None = None  # torch intra-op threads while timing (None: torch's default)
    # PEFT methods of exp-overall-end2end and exp-ablation-breakdown that run dense only (prefix
    # tuning: patch.py's layers have no prefix keys, setups.runs): eager and SDPA, no LE
    dense_methods: tuple[str, ...] = ("prefix",)
    seed: int = 0
    # test_model_step: LoRA step of one model, LE (exposer / synthetic-density masks) vs dense
    step_model: str | None = None  # None: no such case at this scale
    step_init: str = "trained"  # trained | random (zoo.build: random init, said in the record)
    step_seq_lens: tuple[int, ...] = (1024,)
    step_densities: tuple[float, ...] = ()  # "synthetic density" cases (attention and MLP)
    step_rounds: int = 10  # also the rounds of the in-run break-even measurement (breakeven.py)


CONFIGS = {
    "tiny": Config(model="opt-tiny", seq_lens=(512, 1024), methods=("full", "lora", "adapter",
                   "bitfit"), batch_size=1, rounds=3, warmup=1,
                   memory_models=(("opt-350m", "opt-tiny"),),
                   memory_seq_lens=(128, 256, 512, 1024, 2048), scale_models=("opt-tiny",),
                   scale_seq_len=512, gpt2_models=("gpt2-tiny",),
                   ablation_seq_lens=(512, 1024), curve_steps=12, curve_seq_len=256,
                   curves=CURVES_DENSE_MLP, lr=1e-3,
                   n_records=1500, predictor_rows=8, ops=OpsConfig(),
                   threads=1, step_model="opt-tiny", step_seq_lens=(1024, 2048)),
    "small": Config(model="opt-125m-shape", seq_lens=(512, 1024), methods=("full", "lora",
                    "adapter", "bitfit"), batch_size=1, rounds=10, warmup=1,
                    memory_models=(("opt-350m", "opt-tiny"), ("opt-1.3b", "opt-125m-shape")),
                    memory_seq_lens=(128, 256, 512, 1024, 2048),
                    scale_models=("opt-tiny", "opt-125m-shape"),
                    scale_seq_len=1024, gpt2_models=("gpt2-small-shape",),
                    ablation_seq_lens=(512, 1024), curve_steps=100,
                    curve_seq_len=512, curves=CURVES_DENSE_MLP, lr=3e-4, n_records=20000,
                    predictor_rows=32,
                    ops=OpsConfig(attn_sparsities=SPARSITIES, mlp_tokens=1024,
                                  attn_seq_len=1024, rounds=7, threads=None,
                                  model="opt-125m-shape", seq_len=512, train_rows=48,
                                  test_rows=16, predictor_steps=600, rank=32,
                                  grain_time_rounds=3),
                    threads=1, step_model="opt-125m-shape",
                    step_densities=(0.25,)),
    "paper": Config(model="opt-1.3b", seq_lens=(512, 1024), methods=("full", "lora", "adapter",
                    "bitfit"), batch_size=4, rounds=10, warmup=2,
                    memory_models=(("opt-350m", "opt-350m"), ("opt-1.3b", "opt-1.3b")),
                    memory_seq_lens=(128, 256, 512, 1024, 2048),
                    scale_models=("opt-350m", "opt-1.3b", "opt-2.7b"),
                    scale_seq_len=1024, gpt2_models=("gpt2-large", "gpt2-xl"),
                    ablation_seq_lens=(512, 1024, 2048), curve_steps=500,
                    curve_seq_len=1024, curves=CURVES_ALL, lr=1e-4, n_records=42000,
                    predictor_rows=256,
                    ops=OpsConfig(attn_sparsities=SPARSITIES, mlp_tokens=4096, d_model=2048,
                                  ffn_dim=8192, attn_seq_len=2048, heads=32, head_dim=64,
                                  rounds=10, threads=None, warmup=2, model="opt-1.3b",
                                  seq_len=1024, expose_batch=8, train_rows=256, test_rows=64,
                                  predictor_steps=2000, rank=64),
                    step_model="opt-1.3b", step_densities=(0.25,)),
}


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # end2end | memory | ablation | breakdown | predictor | scale | gpt2 | model_step
    model: str
    seq_len: int
    method: str = "lora"
    part: str = "both"  # which layers' parts run sparse: attn | mlp | both
    masks: str = "predicted"  # predicted | random | random_attn | random_mlp | dense (curves)
    figure: str = ""  # artifact figure this case feeds (memory: exp-overall-memory-<suffix>)
    density: float = 1.0  # masks="synthetic": attention and MLP block density
    init: str = "trained"  # base model: trained | random
    reorder: bool = False  # predictor curves: MLP neurons reordered first (setups.curve)


def end2end_cases(config) -> list[Case]:
    """exp-overall-end2end: step time per PEFT method and L, dense (SDPA, eager) vs LE."""
    return [Case(f"{short_name(config.model)}-{m}-L{L}", "end2end", config.model, L, m)
            for L in config.seq_lens for m in config.methods + config.dense_methods]


def memory_cases(config) -> list[Case]:
    """exp-overall-memory-* (Fig 8): training memory per method and L, one panel per model."""
    return [Case(f"{fig}-{short_name(model)}-{m}-L{L}", "memory", model, L, m,
                 figure=f"exp-overall-memory-{fig}")
            for fig, model in config.memory_models for m in config.methods
            for L in config.memory_seq_lens]


def ablation_cases(config) -> list[Case]:
    """exp-ablation-{attn,mlp}-time: LoRA step with only attention (or only MLP) sparse."""
    return [Case(f"{short_name(config.model)}-{part}-L{L}", "ablation", config.model, L, part=part)
            for part in ("attn", "mlp") for L in config.ablation_seq_lens]


def breakdown_cases(config) -> list[Case]:
    """exp-ablation-breakdown (Fig 10): a step's time in parts per PEFT method and length."""
    return [Case(f"{short_name(config.model)}-{m}-L{L}", "breakdown", config.model, L, m)
            for L in config.seq_lens for m in config.methods + config.dense_methods]


def predictor_cases(config) -> list[Case]:
    """exp-ablation-predictor (Fig 11 left): LoRA loss curves per (masks, reorder) of
    config.curves (setups.mask_source, setups.reorder_mlp)."""
    m = config.model
    return [Case(f"{short_name(m)}-{masks}{'-reordered' if reorder else ''}", "predictor", m,
                 config.curve_seq_len, masks=masks, reorder=reorder)
            for masks, reorder in config.curves]


def scale_cases(config) -> list[Case]:
    """exp-scale-model: LoRA step LE vs dense SDPA across model sizes."""
    return [Case(f"{short_name(m)}-L{config.scale_seq_len}", "scale", m, config.scale_seq_len)
            for m in config.scale_models]


def gpt2_cases(config) -> list[Case]:
    """exp-scale-gpt2 (Fig 13): a step of every PEFT method on GPT-2 (its GELU MLP dense)."""
    return [Case(f"{short_name(m)}-{method}-L{config.scale_seq_len}", "gpt2", m,
                 config.scale_seq_len, method) for m in config.gpt2_models
            for method in config.methods]


def model_step_cases(config) -> list[Case]:
    """LoRA step of `step_model` per length, LE with the exposer's masks and with random ones
    at each "synthetic density", vs the dense modes."""
    if config.step_model is None:
        return []
    m, init = config.step_model, config.step_init
    s = f"{short_name(m)}-{init}"
    return [c for L in config.step_seq_lens for c in (
        Case(f"{s}-exposed-L{L}", "model_step", m, L, masks="exposed", init=init),
        *(Case(f"{s}-synthetic{d:g}-L{L}", "model_step", m, L, masks="synthetic", density=d,
               init=init) for d in config.step_densities))]


# -- the smoke budget ---------------------------------------------------------------------------
SMOKE_LEN = 64  # tokens per row: 4 attention blocks of 16 (off-diagonal blocks to drop), 1 cell
# of the predictors' pooling; 1 row a batch; predictors on 2 rows (1 to fit, 1 for thresholds)


def _smoke_curve(curves: tuple) -> tuple:
    """The loss curve that runs the most code: random masks on the reordered model (its
    measure also runs the dense curve); else the first reordered, else the first masked."""
    masked = [c for c in curves if c[0] != "dense"] or list(curves)
    pick = next((c for c in masked if c == ("random", True)), None) or \
        next((c for c in masked if c[1]), masked[0])
    return (pick,)


def smoke(config: Config) -> Config:
    """The scale's config cut to the least work that runs every case kind's code path: one
    case per kind and model (LoRA, one length, sparsity, curve, density), SMOKE_LEN-token rows,
    one round without warm-up, one fine-tuning step, predictors of 2 steps on 2 rows."""
    from dataclasses import replace

    L = SMOKE_LEN
    o = config.ops
    ops = replace(o, sparsities=(0.5,), attn_sparsities=(0.5,), mlp_tokens=L, attn_seq_len=L,
                  rounds=1, warmup=0, seq_len=L, expose_batch=1,
                  predictor_mlp_blocks=o.predictor_mlp_blocks[:1], train_rows=2, test_rows=1,
                  predictor_steps=2, grain_time_rounds=min(o.grain_time_rounds, 1),
                  doc_seq_lens=(L,), doc_grid=o.doc_grid[:1], doc_rounds=1)
    return replace(config, seq_lens=(L,), methods=("lora",), dense_methods=(), batch_size=1,
                   rounds=1, warmup=0, memory_seq_lens=(L,), scale_seq_len=L,
                   ablation_seq_lens=(L,), curve_steps=1, curve_seq_len=L,
                   curves=_smoke_curve(config.curves), n_records=min(config.n_records, 60),
                   predictor_rows=2, ops=ops, step_seq_lens=(L,),
                   step_densities=config.step_densities[:1], step_rounds=1)


def needs(case, config) -> dict:
    """What `case` needs (core.plan): its model's weights and the tokens of its training
    steps (rows x length x steps x 3 modes); the operator cases run random tensors (none)."""
    if not isinstance(case, Case):
        model = getattr(case, "model", None)  # exposer / predictor cases: rows through the model
        rows = getattr(case, "batch", 0) + getattr(case, "train_rows", 0)
        return {("models" if _hub_model(case) else "shapes"): [model],
                "tokens": rows * case.seq_len, "train": False} if model else {}
    steps = {"predictor": config.curve_steps, "model_step": config.step_rounds,
             "memory": 1}.get(case.kind, config.warmup + config.rounds)
    return {("models" if _hub_model(case) else "shapes"): [case.model],
            "train": True if case.method == "full" else "peft",
            "tokens": config.batch_size * case.seq_len * steps * 3}
