"""Scale settings and cases of the operator, exposer and predictor benchmarks
(bench/test_long_exposure_ops.py).

    python -c "from benchlab.long_exposure import CONFIGS; from benchlab.long_exposure.opcases \
import *; print([c.id for c in op_mlp_cases(CONFIGS['tiny'])])"

The case functions take the experiment's Config and read its `ops` (an OpsConfig). Operator
shapes are the 125m shape (d 768, F 3072, 12 heads of 64) from tiny on, because a 128-wide model
is all overhead and says nothing about the kernels; `paper` uses the 1.3b shape. Metric names
are documented where each kind is measured (measure.measure_<kind> and the modules it calls).
"""

from dataclasses import dataclass

from benchlab.core.errors import BenchlabError

SPARSITIES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9)


@dataclass(frozen=True)
class OpsConfig:
    sparsities: tuple[float, ...] = SPARSITIES  # MLP sweep
    attn_sparsities: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.75, 0.9)
    mlp_tokens: int = 512  # tokens per MLP call (B * L)
    d_model: int = 768
    ffn_dim: int = 3072
    mlp_block: int = 64
    attn_seq_len: int = 512
    heads: int = 12
    head_dim: int = 64
    attn_batch: int = 1
    rounds: int = 5  # interleaved timed rounds per implementation
    threads: int | None = 1  # torch threads while timing operators (None: torch's default);
    # tiny runs on shared 2-core CI machines, where one thread gives stable kernel ratios
    warmup: int = 1
    model: str = "opt-tiny"  # exposer and predictor model
    seq_len: int = 128  # exposer / predictor sequence length (the tiny model trains on 128)
    expose_batch: int = 4
    mass: float = 0.95
    mlp_rel: float = 0.05
    predictor_mlp_blocks: tuple[int, ...] = (64, 1)  # 64: what patch.py runs; 1: per neuron
    train_rows: int = 16  # predictor training rows (a quarter of them for the threshold: with
    # 12, i.e. 3 threshold rows, the worst layer's held-out attention recall fell to 0.92)
    test_rows: int = 8  # held-out rows for recall / precision
    predictor_steps: int = 300
    rank: int = 16  # attention predictor rank per head
    grain_time_rounds: int = 15  # mlp_grain's per-layer MLP operator times (0: not timed);
    # opt-tiny: ~3 ms a call, ~4 s in all; on a shared 2-core machine the mean ratios of three
    # runs spanned 0.55-1.34 with 5 rounds, and 0.05 with 15
    # doc_attn (attn_study.py): the trained `model`'s masks on packed rows of these lengths, at
    # its own heads of `head_dim` (4 heads at tiny: a third of the 125m shape's work per call)
    doc_seq_lens: tuple[int, ...] = (1024, 2048)
    doc_grid: tuple[float, ...] = (0.03, 0.05, 0.075, 0.1, 0.15, 0.2)  # in-document densities
    doc_rounds: int = 10  # rotated rounds: every timed claim rests on >= 10


@dataclass(frozen=True)
class OpCase:
    id: str
    kind: str  # op_mlp | op_attn
    sparsity: float
    tokens: int  # MLP: tokens per call; attention: sequence length
    d_model: int
    ffn_dim: int
    block: int
    heads: int
    head_dim: int
    batch: int


@dataclass(frozen=True)
class ExposerCase:
    id: str
    kind: str
    model: str
    seq_len: int
    batch: int
    mass: float
    mlp_rel: float
    mlp_block: int


@dataclass(frozen=True)
class PredictorCase:
    id: str
    kind: str
    model: str
    seq_len: int
    mass: float
    mlp_rel: float
    mlp_block: int
    train_rows: int
    test_rows: int
    steps: int
    rank: int


def short_name(model: str) -> str:
    """A model name for case ids: opt-1.3b -> opt13b."""
    return model.replace("-", "").replace(".", "")


def op_mlp_cases(config) -> list[OpCase]:
    """exp-ablation-operator-mlp: block-sparse MLP vs dense over block sparsity."""
    c = config.ops
    return [OpCase(f"mlp-d{c.d_model}-sp{round(100 * s):02d}", "op_mlp", s, c.mlp_tokens,
                   c.d_model, c.ffn_dim, c.mlp_block, c.heads, c.head_dim, 1)
            for s in c.sparsities]


def op_attn_cases(config) -> list[OpCase]:
    """exp-ablation-operator-attn: block-sparse attention vs SDPA and eager over sparsity
    (dropped fraction of the off-diagonal causal blocks)."""
    c = config.ops
    return [OpCase(f"attn-L{c.attn_seq_len}-sp{round(100 * s):02d}", "op_attn", s,
                   c.attn_seq_len, c.heads * c.head_dim, c.ffn_dim, 16, c.heads, c.head_dim,
                   c.attn_batch) for s in c.attn_sparsities]


def kernel_cases(config) -> list[OpCase]:
    """exp-ablation-kernels (Fig 12): SDD, DSD, fc1 and fc2 each on its own vs dense."""
    c = config.ops
    return [OpCase(f"kernels-L{c.attn_seq_len}-sp{round(100 * s):02d}", "kernel", s,
                   c.attn_seq_len, c.d_model, c.ffn_dim, c.mlp_block, c.heads, c.head_dim,
                   c.attn_batch) for s in c.attn_sparsities]


def _model_case(config, kind: str) -> list[ExposerCase]:
    c = config.ops
    return [ExposerCase(f"{short_name(c.model)}-L{c.seq_len}", kind, c.model, c.seq_len,
                        c.expose_batch, c.mass, c.mlp_rel, c.mlp_block)]


def exposer_cases(config) -> list[ExposerCase]:
    """exp-ablation-{attn,mlp}-sparsity: per-layer densities of the trained model."""
    return _model_case(config, "exposer")


def pattern_cases(config) -> list[ExposerCase]:
    """exp-ablation-attn-patterns (Fig 9, patterns.py)."""
    return _model_case(config, "pattern")


def mlp_grain_cases(config) -> list[ExposerCase]:
    """MLP densities by block size and threshold, neurons plain and reordered (mlp_grain.py)."""
    return _model_case(config, "mlp_grain")


def predictor_quality_cases(config) -> list[PredictorCase]:
    """Predictor recall / precision on held-out rows at the validation-chosen threshold."""
    c = config.ops
    return [PredictorCase(f"{short_name(c.model)}-L{c.seq_len}-mlpblock{b}", "predictor", c.model,
                          c.seq_len, c.mass, c.mlp_rel, b, c.train_rows, c.test_rows,
                          c.predictor_steps, c.rank) for b in c.predictor_mlp_blocks]


def corpus_rows(model: str, n: int, seq_len: int, split: str = "val"):
    """(n, seq_len) int64 consecutive, non-overlapping rows of the zoo corpus split in the
    model's vocabulary, so a prefix can train and the rest be held out."""
    import numpy as np
    import torch

    from benchlab import zoo

    need = n * seq_len
    if zoo.spec(model).hub_id is None:
        from benchlab.zoo.tokenize import corpus_tokens

        toks = np.asarray(corpus_tokens(split))
    else:
        from benchlab.zoo.text import corpus_documents

        from .finetune import encode, eos_id, tokenizer_for

        tok, ids = tokenizer_for(model), []
        for doc in corpus_documents(split):
            ids += encode(tok, doc) + [eos_id(tok)]
            if len(ids) >= need:
                break
        toks = np.asarray(ids)
    if len(toks) < need:
        raise BenchlabError(f"zoo corpus {split!r}: {len(toks)} tokens, fewer than "
                            f"{n} rows x {seq_len}")
    return torch.from_numpy(toks[:need].astype(np.int64)).view(n, seq_len)
