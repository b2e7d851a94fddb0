"""Run configuration: the seed's YAML sections as frozen dataclasses, with dotted CLI overrides.

    benchlab sublora train --config-file sublora_train.yaml --sublora.intrinsic_dim=1000 \
        --sublora.allocation_mode=learned --login.out_dir=out/d1000_learned_s42

Sections as in the seed's config/sublora_train.yaml. Unknown sections or fields and values of the
wrong type raise a one-line BenchlabError naming the file (or option) and the field. A
--config-file that does not exist is looked up by name among the shipped configs/.
"""

import math
import os
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import yaml

from ..core.errors import fail

CONFIG_DIR = Path(__file__).parent / "configs"
BOUND_TYPES = ("document_level",)


@dataclass(frozen=True)
class Login:
    out_dir: str = "out/sublora"
    wandb_log: bool = False           # accepted for seed configs; benchlab logs to stdout/JSON
    wandb_project: str = "SubLoRA"
    wandb_run_name: str = "training"


@dataclass(frozen=True)
class Data:
    dataset_dir: str = ""             # nanoGPT train.bin/val.bin; "" = the zoo synthetic corpus
    n_documents: int = 300_000        # synthetic corpus: training documents (m of the bound)
    n_val_documents: int = 2_000
    corpus_seed: int = 2              # zoo models + BPE saw seeds 0, 1: an independent draw
    batch_size: int = 8
    block_size: int = 128
    perturb_word_order_window_size: int = 0  # seed field; only 0 is supported
    openwebtext_train_eot_indices_file: str = ""
    eot_token: int = -1               # bins: -1 = meta.json's eot_id (required), else this id
    empirical_document_length_distribution_file: str = ""


@dataclass(frozen=True)
class Training:
    max_iters: int = 100
    gradient_accumulation_steps: int = 1
    eval_interval: int = 25
    eval_iters: int = 4
    log_interval: int = 10
    always_save_checkpoint: bool = False
    grad_clip: float = 1.0


@dataclass(frozen=True)
class Optimizer:
    learning_rate: float = 5e-3
    weight_decay: float = 1e-2
    beta1: float = 0.9
    beta2: float = 0.999
    adam_epislon: float = 1e-6        # sic: the seed's spelling
    correct_bias: bool = True         # seed field; torch AdamW always corrects the bias
    no_decay_bias: bool = False


@dataclass(frozen=True)
class LearningRate:
    warmup_iters: int = 10
    lr_decay_iters: int = 100
    min_lr_ratio: float = 0.1         # cosine decays to min_lr_ratio * learning_rate


@dataclass(frozen=True)
class Model:
    name: str = "gpt2-tiny"           # zoo spec
    init_from: str = "zoo-trained"    # scratch (zoo.build) | zoo-trained | a local model dir
    base_steps: int = 0               # zoo.trained steps (0: the zoo default)
    n_layer: int = 0                  # seed fields: 0 = the spec's; other values must match
    n_head: int = 0
    n_embd: int = 0
    apply_rope: bool = False
    use_mistral_sliding_window: bool = False


@dataclass(frozen=True)
class SubLoRA:
    intrinsic_dim: int = 1000
    allocation_mode: str = "uniform"  # uniform | grouped | fixed | learned
    allocation_ratio: float = 0.5     # fixed: r = d_B / d per layer
    intrinsic_mode: str = "dense"     # projector: dense | sparse | kron
    use_lora: bool = True
    lora_alpha: float = 32.0
    lora_dropout: float = 0.0
    attention_linear_use_lora: bool = True
    attention_linear_lora_r: int = 4
    linear_head_lora_r: int = 4
    linear_head_enable_lora: bool = False
    gating_lr: float = 0.01           # the learned gates' own learning rate (no weight decay)
    gating_scale: float = 1.0         # C of the soft mask (the seed used 5)
    gating_init: float = 0.0
    dense_cache_mb: float = 256.0


@dataclass(frozen=True)
class Bounds:
    bound_type: str = "document_level"  # the seed's field; only document_level is implemented
    levels: int = 11                  # quantization levels
    quant_method: str = "uniform"     # uniform | kmeans
    qat_iters: int = 0                # quantization-aware fine-tuning steps (0: none)
    qat_lr: float = 1e-3
    bound_samples: int = 200          # s: documents sampled from the m training documents
    eps: float = 0.05
    misc_extra_bits: float = 5.0      # hyperparameter bits (levels, d, mode, ...)
    alphas: tuple = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
    topk: tuple = (1, 5, 10)
    grid_in_sample_term: bool = True
    sample_seed: int = 7              # document sampling for the bound, fixed before training
    max_doc_tokens: int = 1024        # documents are cut to the model's context
    ngram_docs: int = 1000            # unigram/bigram baselines: fitted on the first n train docs
    ngram_discount: float = 0.75      # bigram: absolute discount D (Kneser-Ney style)


@dataclass(frozen=True)
class System:
    seed: int = 42
    device: str = "auto"
    dtype: str = "float32"
    compile: bool = False
    threads: int = 0                  # torch.set_num_threads (0: leave as is)


@dataclass(frozen=True)
class RunConfig:
    login: Login = field(default_factory=Login)
    data: Data = field(default_factory=Data)
    training: Training = field(default_factory=Training)
    optimizer: Optimizer = field(default_factory=Optimizer)
    learning_rate: LearningRate = field(default_factory=LearningRate)
    model: Model = field(default_factory=Model)
    sublora: SubLoRA = field(default_factory=SubLoRA)
    bounds: Bounds = field(default_factory=Bounds)
    system: System = field(default_factory=System)


def _coerce(value, typ, where: str, name: str):
    origin = typing.get_origin(typ)
    if typ is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        if isinstance(value, bool):
            return value
        raise fail(where, name, f"expected true/false, got {value!r}")
    if typ is tuple or origin is tuple:
        if isinstance(value, str):
            value = yaml.safe_load(value if value.startswith("[") else f"[{value}]")
        if not isinstance(value, list | tuple):
            raise fail(where, name, f"expected a list, got {value!r}")
        return tuple(value)
    try:
        if typ is int:
            number = float(value)
            if not number.is_integer() or isinstance(value, bool):
                raise ValueError
            return int(number)
        return typ(value)
    except (TypeError, ValueError):
        raise fail(where, name, f"expected {typ.__name__}, got {value!r}") from None


# Fields that must be >= 1 (counts) or > 0 (rates, scales); every float must be finite.
AT_LEAST_ONE = {"data.n_documents", "data.n_val_documents", "data.batch_size", "data.block_size",
                "training.max_iters", "training.gradient_accumulation_steps",
                "training.eval_interval", "training.eval_iters", "training.log_interval",
                "sublora.intrinsic_dim", "sublora.attention_linear_lora_r",
                "sublora.linear_head_lora_r", "bounds.bound_samples", "bounds.max_doc_tokens",
                "bounds.ngram_docs"}
POSITIVE = {"optimizer.learning_rate", "sublora.lora_alpha", "sublora.gating_lr",
            "bounds.qat_lr", "bounds.eps"}


def _check_range(value, where: str, name: str):
    if isinstance(value, float) and not math.isfinite(value):
        raise fail(where, name, f"must be finite, got {value!r}")
    if isinstance(value, int) and abs(value) > 2**63 - 1:
        raise fail(where, name, f"must fit a 64-bit integer, got {value!r}")
    if name in AT_LEAST_ONE and value < 1:
        raise fail(where, name, f"must be >= 1, got {value!r}")
    if name in POSITIVE and not value > 0:
        raise fail(where, name, f"must be > 0, got {value!r}")
    return value


def apply(config: RunConfig, updates: dict, where: str) -> RunConfig:
    """A copy of `config` with {section: {field: value}} applied (validated and typed)."""
    sections = {f.name: f for f in fields(RunConfig)}
    out = {}
    for sec, values in updates.items():
        if sec not in sections:
            raise fail(where, sec, f"unknown section; choose one of {', '.join(sections)}")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise fail(where, sec, "expected a mapping of fields")
        current = getattr(config, sec)
        hints = typing.get_type_hints(type(current))
        changes = {}
        for key, value in values.items():
            if key not in hints:
                raise fail(where, f"{sec}.{key}", f"unknown field; known: {', '.join(hints)}")
            changes[key] = _check_range(_coerce(value, hints[key], where, f"{sec}.{key}"),
                                        where, f"{sec}.{key}")
        out[sec] = replace(current, **changes)
    return replace(config, **out)


def parse_overrides(args: list[str]) -> dict:
    """['--sublora.intrinsic_dim=1000', '--a.b', 'v'] -> {'sublora': {'intrinsic_dim': '1000'}}."""
    out: dict = {}
    rest = iter(args)
    for arg in rest:
        if not arg.startswith("--") or "." not in arg.split("=")[0]:
            raise fail("command line", arg, "expected --section.field=value")
        key, eq, value = arg[2:].partition("=")
        if not eq and (value := next(rest, None)) is None:
            raise fail("command line", arg, "missing value")
        sec, _, name = key.partition(".")
        out.setdefault(sec, {})[name] = value
    return out


def resolve(path: str | Path) -> Path:
    """`path` if it exists, else the shipped configs/NAME.yaml (the seed's
    `--config-file config/sublora_train.yaml` finds the shipped one)."""
    path = Path(path)
    if path.exists():
        return path
    packaged = CONFIG_DIR / path.name
    return packaged if packaged.exists() else path


def packaged() -> list[str]:
    """Names of the YAML configs shipped with the package."""
    return sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))


def load(path: str | Path | None = None, overrides: list[str] | dict | None = None) -> RunConfig:
    """Defaults <- YAML file <- dotted overrides, checked. A relative data.dataset_dir is read
    under $BENCHLAB_DATA when it is set (pytest --bench-data)."""
    config, where = RunConfig(), "config"
    if path is not None:
        path = resolve(path)
        where = str(path)
        if not path.exists():
            shipped = ", ".join(packaged())
            raise fail(where, "config-file", f"no such file (shipped configs: {shipped})")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except UnicodeDecodeError:
            raise fail(where, "config-file", "not a text file (binary?); expected YAML") from None
        except yaml.YAMLError as e:
            raise fail(where, "config-file", f"not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise fail(where, "config-file", "expected a mapping of sections")
        config = apply(config, data, where)
    if overrides:
        ov = parse_overrides(overrides) if isinstance(overrides, list) else overrides
        config = apply(config, ov, "command line")
    root, data = os.environ.get("BENCHLAB_DATA"), config.data.dataset_dir
    if root and data and not Path(data).is_absolute():  # pytest --bench-data DIR
        config = replace(config, data=replace(config.data, dataset_dir=str(Path(root) / data)))
    check(config, where)
    return config


def of_scale(scale) -> RunConfig:
    """A scale's (sublora.Config) YAML study with its dotted overrides applied."""
    return load(scale.train_config, ["--" + o.removeprefix("--") for o in scale.overrides])


def check(c: RunConfig, where: str) -> None:
    s = c.sublora
    if s.allocation_mode not in ("uniform", "grouped", "fixed", "learned"):
        raise fail(where, "sublora.allocation_mode",
                   f"{s.allocation_mode!r} is not one of uniform, grouped, fixed, learned")
    if not 0.0 < c.bounds.ngram_discount < 1.0:
        raise fail(where, "bounds.ngram_discount", "must lie in (0, 1)")
    if not 0.0 <= s.allocation_ratio <= 1.0:
        raise fail(where, "sublora.allocation_ratio", "must lie in [0, 1] (r = d_B / d)")
    if s.intrinsic_mode not in ("dense", "sparse", "kron"):
        raise fail(where, "sublora.intrinsic_mode", f"{s.intrinsic_mode!r}: use dense|sparse|kron")
    if not (s.use_lora and s.attention_linear_use_lora):
        raise fail(where, "sublora.use_lora", "SubLoRA needs LoRA on attention (true)")
    if s.linear_head_enable_lora and s.linear_head_lora_r != s.attention_linear_lora_r:
        raise fail(where, "sublora.linear_head_lora_r", "must equal attention_linear_lora_r")
    if c.model.apply_rope or c.model.use_mistral_sliding_window:
        raise fail(where, "model.apply_rope", "GPT-2 uses learned positions; must be false")
    if c.data.perturb_word_order_window_size:
        raise fail(where, "data.perturb_word_order_window_size", "only 0 is supported")
    if c.bounds.quant_method not in ("uniform", "kmeans"):
        raise fail(where, "bounds.quant_method", "use uniform or kmeans")
    if c.bounds.bound_type not in BOUND_TYPES:
        raise fail(where, "bounds.bound_type", f"{c.bounds.bound_type!r} is not implemented; "
                   f"use {' or '.join(BOUND_TYPES)}")
    if c.bounds.levels < 2:
        raise fail(where, "bounds.levels", f"{c.bounds.levels}: quantization needs >= 2 levels")
