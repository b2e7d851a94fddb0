"""SubLoRA with adaptive A/B subspace allocation, and document-level PAC-Bayes bounds.

    pytest bench/test_sublora.py -n 2 --bench-store /tmp/sublora/store.jsonl \
        --bench-reports /tmp/sublora/reports --benchmark-json /tmp/sublora/out.json
    benchlab sublora train --config-file cfg.yaml --sublora.intrinsic_dim=1000
    benchlab sublora eval-bounds --checkpoint out/run
    benchlab sublora analyze --results_dir out --output_dir reports/sublora --budgets 1000 2000

Modules: lora (LoRA on GPT-2's fused q/v), projectors (dense/sparse/Kronecker P, own seeds),
subspace (theta = theta0 + P w and the allocation modes), config (YAML + dotted overrides),
data (documents and batches), train (AdamW loop, DDP, checkpoints), evaluate (quantize, code,
evaluate documents, bound), sweep (one sweep point), and the bounds helper's quantize, coding,
bounds, report, analyze.
"""

from dataclasses import dataclass

from .report import report
from .sweep import run_config, run_point


@dataclass(frozen=True)
class Config:
    model: str = "gpt2-tiny"
    init_from: str = "zoo-trained"    # theta0's base: zoo-trained | scratch | a model dir
    dataset_dir: str = ""             # nanoGPT bins; "" = the zoo synthetic corpus
    dims: tuple = (1000, 2000)
    modes: tuple = (("uniform", 0.5), ("fixed", 0.2), ("fixed", 0.5), ("fixed", 0.8),
                    ("learned", 0.5))
    seeds: tuple = (42, 123, 999)
    projector: str = "dense"
    dense_cache_mb: float = 256.0    # a dense P below this size is kept in memory
    lm_head_lora: bool = False
    max_iters: int = 30
    batch_size: int = 8
    block_size: int = 64
    eval_interval: int = 15
    eval_iters: int = 2
    warmup_iters: int = 5
    learning_rate: float = 5e-3
    gating_lr: float = 0.05
    n_documents: int = 300_000       # m: training documents
    bound_samples: int = 100         # s: documents evaluated for the bound
    max_doc_tokens: int = 256
    levels: int = 11
    step_projectors: tuple = ("dense", "sparse", "kron")   # step-time benchmark
    step_rounds: int = 5
    bound_rounds: int = 2


CONFIGS = {
    "tiny": Config(),
    "small": Config(model="gpt2-small-shape", init_from="scratch", lm_head_lora=True,
                    max_iters=2000, batch_size=16, block_size=256, eval_interval=200,
                    eval_iters=10, warmup_iters=100, bound_samples=2000, max_doc_tokens=1024,
                    dense_cache_mb=2048.0,
                    step_rounds=10, bound_rounds=2),
    "paper": Config(model="gpt2", init_from="scratch", dataset_dir="data/openwebtext",
                    dims=(1000, 2000), lm_head_lora=True, dense_cache_mb=8192.0,
                    max_iters=10000, batch_size=8, block_size=1024, eval_interval=500,
                    eval_iters=10, warmup_iters=500, bound_samples=10000, max_doc_tokens=1024,
                    n_documents=8_000_000, step_rounds=20, bound_rounds=1),
}


@dataclass(frozen=True)
class SweepCase:
    id: str
    d: int
    mode: str
    ratio: float       # fixed: r = d_B / d (share of LoRA B); uniform/learned: unused (0.5)
    seed: int
    kind: str = "sweep"


@dataclass(frozen=True)
class StepCase:
    id: str
    d: int
    projector: str
    mode: str = "uniform"
    kind: str = "step"


@dataclass(frozen=True)
class BoundCase:
    id: str
    d: int
    mode: str = "learned"
    ratio: float = 0.5
    seed: int = 42
    kind: str = "bound"


def _mode_id(mode: str, ratio: float) -> str:
    return f"fixed{ratio:g}" if mode == "fixed" else mode


def sweep_cases(config: Config) -> list[SweepCase]:
    """d x allocation mode x seed: 2 x 5 x 3 = 30 runs (train, then bound)."""
    return [SweepCase(f"d{d}-{_mode_id(m, r)}-s{s}", d, m, r, s)
            for d in config.dims for m, r in config.modes for s in config.seeds]


def step_cases(config: Config) -> list[StepCase]:
    """Training step of the subspace model vs plain LoRA, per d and projector."""
    return [StepCase(f"step-d{d}-{p}", d, p) for d in config.dims
            for p in config.step_projectors]


def bound_cases(config: Config) -> list[BoundCase]:
    """Bound evaluation time (quantize + code + evaluate s documents), per d."""
    return [BoundCase(f"bound-d{d}-learned", d) for d in config.dims]


# Result metrics and tolerances for `benchlab compare` (core.compare): 0 exact, a float relative,
# (rel, abs); None for times and time ratios, which are not results. Training runs 30 float32
# steps, so losses and bounds get relative room; sizes, counts and settings are exact.
METRICS = {
    "*_seconds": None, "*_ms": None, "step_ratio": None, "ratio_goal": None,
    "bound_over_train": None,  # bound evaluation time / training time
    "D": 0, "d": 0, "m": 0, "s": 0, "seed": 0, "mode": 0, "projector": 0, "n_groups": 0,
    "doc_tokens": 0, "best_step": 0, "non_vacuous": 0, "ratio": 0,
    "compressed_size_bits": (0.01, 0), "message_bits": (0.01, 0), "extra_bits": 1e-9,
    "*bound*": 1e-3, "*bpd": 1e-3, "*loss": 1e-3, "kl_divergence": 0.01, "best_alpha": (0, 0.1),
    "top*_error": (0, 0.01), "gamma_B": (0.01, 0.01),
}


def inputs(case, config) -> dict[str, str]:
    """sha256 of the pinned zoo model (theta0's base), tokenizer and corpus."""
    from .. import zoo

    return zoo.artifact_inputs(config.model)


__all__ = ["METRICS", "inputs", "CONFIGS", "Config", "SweepCase", "StepCase", "BoundCase",
           "sweep_cases", "step_cases", "bound_cases", "report", "run_config", "run_point"]
