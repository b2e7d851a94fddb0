"""Transformer timing (CS336 assignment 2): forward / backward / AdamW step times of a
nanoGPT-style TransformerLM over sizes, contexts and precisions, with MFU and an HF LLaMA peer.

    pytest bench/test_lm_timing.py --bench-scale=tiny      # the CI sweep (~2-3 min on 2 cores)
    benchlab lm-timing run --model_size small --context_length 128 --output small.json
    benchlab lm-timing sweep --sizes small medium --contexts 128 256 --results-dir results
    benchlab lm-timing aggregate --results-dir results --output summary.md --csv results.csv

Cases are frozen dataclasses built from the scale's `Config`; `measure.measure_<kind>` measures
one (bench, CLI and asv alike) and `report` turns the records into tables and figures.
"""

from dataclasses import dataclass, field, replace
from itertools import product

from ..core.ratios import Ratio
from .builders import MODES, SHORT, variant_tag
from .model import SIZES, num_params
from .report import report

__all__ = ["METRICS", "RATIOS", "CONFIGS", "Config", "Sweep", "PairSweep", "StepCase", "SweepCase",
           "PairCase", "WarmupCase", "AttnCase", "PeakCase", "step_cases", "sweep_cases",
           "pair_cases", "warmup_cases", "attn_cases", "peak_cases", "variant_tag", "report",
           "smoke", "SIZES", "MODES"]


@dataclass(frozen=True)
class Sweep:
    """A grid of steps: sizes x contexts x modes x precisions x attention x compile. Every step
    of one size and context (of all the config's sweeps) is timed side by side (SweepCase)."""

    sizes: tuple[str, ...]
    contexts: tuple[int, ...]
    modes: tuple[str, ...] = MODES
    precisions: tuple[str, ...] = ("fp32", "bf16")
    attns: tuple[str, ...] = ("sdpa",)
    compile: tuple[bool, ...] = (False,)
    warmup: int = 1
    rounds: int = 10  # the rotated rounds: the units of every paired ratio


@dataclass(frozen=True)
class PairSweep:
    """Side-by-side comparisons timed in alternation. kind "peer": ours vs transformers LLaMA at
    each precision; kind "bf16": ours bf16 autocast vs ours fp32."""

    kind: str
    sizes: tuple[str, ...]
    contexts: tuple[int, ...]
    mode: str = "forward_backward"
    precisions: tuple[str, ...] = ("fp32", "bf16")
    warmup: int = 1
    rounds: int = 10


@dataclass(frozen=True)
class Config:
    steps: tuple[Sweep, ...]
    pairs: tuple[PairSweep, ...]
    warmup_size: str = "tiny"
    warmup_context: int = 256
    warmup_mode: str = "forward_backward"
    warmup_counts: tuple[int, ...] = (0, 1, 2, 5)
    warmup_trials: int = 5  # each count runs `benchlab lm-timing run` in a fresh process
    warmup_repeats: int = 1  # rounds over all counts, order rotated per round (intervals at >= 3)
    attn_contexts: tuple[int, ...] = (128, 256, 512, 1024)
    attn_heads: int = 12  # the small size's heads and head_dim
    attn_head_dim: int = 64
    attn_rounds: int = 3
    peak_precisions: tuple[str, ...] = ("fp32", "bf16")
    batch: int = 4
    vocab: int = 10_000
    compile_backend: str = "inductor"
    sizes: dict = field(default_factory=lambda: dict(SIZES), compare=False, hash=False)


# Result metrics for `benchlab compare` (core.compare): what the model computes and counts; times
# and what is derived from them (throughput, MFU), memory peaks and the number of rounds timed (one
# with --benchmark-disable) are None, not results.
METRICS = {"loss": 1e-4, "max_abs_diff": (0, 1e-5), "flops": 0, "num_params": 0, "n": 0,
           "rounds_timed": None, "status": 0, "fresh_process": 0, "w*_status": 0, "reason": None,
           "ratio*": None, "*_ms": None, "mfu": None, "tflops": None, "peak_tflops": None,
           "tokens_per_s": None, "peak_memory_mb": None,
           # a sweep record's variants, "<variant_tag>.<metric>" (measure.measure_sweep)
           "*.status": 0, "*.flops": 0, "*.reason": None, "*.mfu": None, "*.tflops": None,
           "*.peak_tflops": None, "*.tokens_per_s": None, "*.peak_memory_mb": None}

CONTEXTS = (128, 256, 512, 1024)
PAPER_SIZES = ("small", "medium", "large", "xl", "2.7B")

CONFIGS = {
    "tiny": Config(
        steps=(Sweep(("tiny",), CONTEXTS, modes=("forward", "forward_backward")),
               Sweep(("tiny",), (128, 512), modes=("train_step",)),
               Sweep(("tiny",), (512,), modes=("forward_backward",), precisions=("fp32",),
                     attns=("einsum",))),
        pairs=(PairSweep("peer", ("tiny",), (128, 512)),
               PairSweep("bf16", ("tiny",), (512,), precisions=("bf16",)),
               # the small size in fp32 only: bf16 on a CPU without native bf16 (AVX2 only)
               # is ~50x fp32 and took 12 of CI's minutes; its bf16 pairs are at small scale
               PairSweep("peer", ("small",), (128,), precisions=("fp32",))),
        attn_contexts=(128, 512), warmup_trials=3,
    ),
    "small": Config(
        steps=(Sweep(("tiny",), CONTEXTS),
               Sweep(("small",), (128, 256, 512)),
               Sweep(("small",), (512, 1024), modes=("forward", "forward_backward"),
                     precisions=("fp32",), attns=("einsum",)),
               Sweep(("medium",), (128,), modes=("forward", "forward_backward"), rounds=2)),
        pairs=(PairSweep("peer", ("small",), (128, 256, 512)),
               PairSweep("bf16", ("small", "medium"), (128,), precisions=("bf16",)),
               PairSweep("peer", ("medium",), (128,), rounds=2)),
        warmup_size="small", warmup_context=128, warmup_repeats=3,
    ),
    "paper": Config(
        steps=(Sweep(PAPER_SIZES, CONTEXTS, warmup=5, rounds=10),
               Sweep(PAPER_SIZES, CONTEXTS, modes=("forward_backward",), precisions=("bf16",),
                     compile=(True,), warmup=5, rounds=10),
               Sweep(("small", "medium"), CONTEXTS, modes=("forward_backward",),
                     precisions=("fp32",), attns=("einsum",), warmup=5, rounds=10)),
        pairs=(PairSweep("peer", PAPER_SIZES, CONTEXTS, warmup=5, rounds=10),
               PairSweep("bf16", PAPER_SIZES, (512,), precisions=("bf16",), warmup=5,
                         rounds=10)),
        warmup_size="small", warmup_context=512, warmup_trials=10, warmup_repeats=5,
        attn_contexts=(128, 256, 512, 1024, 2048, 4096), attn_rounds=10,
    ),
}


# Speed ratios tracked across commits (core.ratios). Shown, not gated: TransformerLM against HF
# Llama and bf16 against fp32 on CPU moved by up to 0.4 between CPU models (bf16 kernels differ).
RATIOS = {
    "pairs": Ratio("pair", "ratio", gate=False, contender="first of each pair",
                   reference="second of each pair (HF Llama, fp32)"),
}


# -- cases ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StepCase:
    id: str
    size: str
    context: int
    mode: str
    precision: str
    attn: str
    compile: bool
    batch: int
    vocab: int
    warmup: int
    rounds: int
    kind: str = "step"


@dataclass(frozen=True)
class PairCase:
    """`a` is timed against `b` in alternation; ratio = median(a) / median(b)."""

    id: str
    kind: str  # "peer" or "bf16"
    size: str
    context: int
    mode: str
    a_impl: str
    a_precision: str
    b_impl: str
    b_precision: str
    batch: int
    vocab: int
    warmup: int
    rounds: int


@dataclass(frozen=True)
class WarmupCase:
    """All warm-up counts, each in a fresh process, `repeats` rotated rounds."""

    id: str
    size: str
    context: int
    mode: str
    counts: tuple[int, ...]
    trials: int
    repeats: int
    batch: int
    vocab: int
    kind: str = "warmup"


@dataclass(frozen=True)
class SweepCase:
    """Every step of one size and context in the config's sweeps, timed side by side: each
    round runs every variant (mode, precision, attention, compile) once, in an order rotated
    every round; the variants of one attention share one model (and AdamW state)."""

    id: str
    size: str
    context: int
    variants: tuple[tuple[str, str, str, bool], ...]  # (mode, precision, attn, compile)
    batch: int
    vocab: int
    warmup: int
    rounds: int
    kind: str = "sweep"


@dataclass(frozen=True)
class AttnCase:
    id: str
    context: int
    impl: str
    precision: str
    heads: int
    head_dim: int
    batch: int
    rounds: int
    kind: str = "attn"


@dataclass(frozen=True)
class PeakCase:
    id: str
    precision: str
    kind: str = "peak"


def step_cases(config: Config) -> list[StepCase]:
    """Every step of the config's sweeps, one case each (a CLI run is one of these)."""
    return [StepCase(f"{size}-ctx{ctx}-{variant_tag(mode, prec, attn, comp)}", size, ctx, mode,
                     prec, attn, comp, config.batch, config.vocab, sw.warmup, sw.rounds)
            for sw in config.steps
            for size, ctx, mode, prec, attn, comp in product(
                sw.sizes, sw.contexts, sw.modes, sw.precisions, sw.attns, sw.compile)]


def sweep_cases(config: Config) -> list[SweepCase]:
    """The steps of step_cases grouped by size and context, in order; a group's warm-up and
    rounds are the most of any of its sweeps'."""
    groups: dict[tuple[str, int], list[StepCase]] = {}
    for c in step_cases(config):
        groups.setdefault((c.size, c.context), []).append(c)
    return [SweepCase(f"{size}-ctx{ctx}", size, ctx,
                      tuple((c.mode, c.precision, c.attn, c.compile) for c in steps),
                      config.batch, config.vocab, max(c.warmup for c in steps),
                      max(c.rounds for c in steps))
            for (size, ctx), steps in groups.items()]


def pair_cases(config: Config) -> list[PairCase]:
    cases = []
    for sw in config.pairs:
        for size, ctx, prec in product(sw.sizes, sw.contexts, sw.precisions):
            if sw.kind == "peer":
                tag, b = f"peer-{size}-ctx{ctx}-{SHORT[sw.mode]}-{prec}", ("peer", prec)
            else:
                tag, b = f"{prec}-vs-fp32-{size}-ctx{ctx}-{SHORT[sw.mode]}", ("ours", "fp32")
            cases.append(PairCase(tag, sw.kind, size, ctx, sw.mode, "ours", prec, *b,
                                  config.batch, config.vocab, sw.warmup, sw.rounds))
    return cases


def warmup_cases(config: Config) -> list[WarmupCase]:
    return [WarmupCase(f"{config.warmup_size}-ctx{config.warmup_context}-"
                       f"{SHORT[config.warmup_mode]}-x{config.warmup_repeats}",
                       config.warmup_size, config.warmup_context, config.warmup_mode,
                       config.warmup_counts, config.warmup_trials, config.warmup_repeats,
                       config.batch, config.vocab)]


def attn_cases(config: Config) -> list[AttnCase]:
    return [AttnCase(f"attn-ctx{ctx}-{impl}-{prec}", ctx, impl, prec, config.attn_heads,
                     config.attn_head_dim, config.batch, config.attn_rounds)
            for ctx in config.attn_contexts for prec in ("fp32", "bf16")
            for impl in ("sdpa", "einsum")]


def peak_cases(config: Config) -> list[PeakCase]:
    return [PeakCase(f"matmul-peak-{p}", p) for p in config.peak_precisions]


# -- the smoke budget ---------------------------------------------------------------------------

def _first(sweep, rounds: int):
    """A sweep (Sweep or PairSweep) cut to its first size and shortest context, every mode,
    precision, attention and compile setting kept, one warm-up step and `rounds` rounds."""
    return replace(sweep, sizes=sweep.sizes[:1], contexts=(min(sweep.contexts),),
                   warmup=min(sweep.warmup, 1), rounds=min(sweep.rounds, rounds))


def smoke(config: Config) -> Config:
    """The config's code paths at the least work (`--bench-budget smoke`): every size cut to one
    layer (as `benchlab zoo paper-shapes --layers 1` cuts the hub models), a batch of one; each
    step sweep by _first with one round, each pair sweep with 3 (the fewest with an interval);
    attention at the shortest context; the warm-up study with 0 and 1 warm-up steps, once each."""
    sizes = {name: replace(cfg, num_layers=1) for name, cfg in config.sizes.items()}
    shortest = min(c for sw in config.steps + config.pairs for c in sw.contexts)
    counts = sorted(config.warmup_counts)
    return replace(
        config, sizes=sizes, batch=min(config.batch, 1),
        steps=tuple(_first(sw, 1) for sw in config.steps),
        pairs=tuple(_first(sw, 3) for sw in config.pairs),
        warmup_context=min(config.warmup_context, shortest),
        warmup_counts=tuple(counts[:1] + [w for w in counts if w > 0][:1]), warmup_trials=1,
        warmup_repeats=1, attn_contexts=(min(config.attn_contexts),),
        attn_rounds=min(config.attn_rounds, 2))


def needs(case, config) -> dict:
    """What `case` needs (core.plan, `benchlab plan`): no weights or data (random-init models);
    the parameters of its size's TransformerLM (the HF Llama peer has the same shape), the
    tokens of all its timed and warm-up steps and whether they train (backward, AdamW)."""
    size = getattr(case, "size", None)
    if size is None:  # attention and matmul-peak kernels on random tensors
        return {}
    dims = replace(config.sizes[size], vocab_size=getattr(case, "vocab", config.vocab))
    row = case.batch * case.context
    if isinstance(case, WarmupCase):
        steps = sum(c + 1 for c in case.counts) * case.trials * case.repeats
    else:
        steps = (case.warmup + case.rounds) * (len(case.variants) if isinstance(case, SweepCase)
                                               else 2 if isinstance(case, PairCase) else 1)
    modes = ({m for m, *_ in case.variants} if isinstance(case, SweepCase)
             else {getattr(case, "mode", "train_step")})
    return {"params": {f"TransformerLM {size}": num_params(dims)}, "tokens": row * steps,
            "train": modes != {"forward"}}
