"""One timed step of a language model and the numbers around it (FLOPs, MFU, the matmul peak,
memory estimates, OOM). `prepare` builds the model (ours or the LLaMA peer), a batch and the step
closure of a mode (forward, forward_backward, train_step = + AdamW) and a precision (fp32, or
bf16/fp16 autocast); lm_timing.measure times it with core's Timer and `summarize` gives metrics.

    python -c "from benchlab.lm_timing.builders import *; from benchlab.core import time_fn;
    p = prepare('tiny', 128, 'forward', 'fp32'); print(summarize(time_fn(p.step, trials=3), p))"
"""

import functools
import gc
from dataclasses import dataclass, replace

import torch

from benchlab.core.errors import BenchlabError, fail
from benchlab.core.stats import describe

from .model import ModelConfig, TransformerLM, lm_loss, num_params, size_config, step_flops

MODES = ("forward", "forward_backward", "train_step")
SHORT = {"forward": "fwd", "forward_backward": "fwd_bwd", "train_step": "train"}
PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Prepared:
    """A ready-to-time step and the facts needed to judge its time."""

    step: object  # () -> loss tensor
    model: torch.nn.Module
    cfg: ModelConfig
    batch: int
    context: int
    mode: str
    precision: str
    device: str
    num_params: int
    flops: int


def variant_tag(mode: str, precision: str, attn: str, compile: bool) -> str:
    """fwd_bwd-bf16, fwd-fp32-einsum, fwd_bwd-bf16-compiled, ...: one step setting."""
    return (f"{SHORT[mode]}-{precision}" + ("-einsum" if attn != "sdpa" else "")
            + ("-compiled" if compile else ""))


def check_choice(value, choices, field: str) -> None:
    if value not in choices:
        raise BenchlabError(f"lm_timing: {field}: {value!r} is not one of {', '.join(choices)}")


def random_batch(vocab: int, batch: int, context: int, device="cpu", seed: int = 0):
    """Uniform random token ids x and next-token targets y, each (batch, context)."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (batch, context + 1), generator=g)
    return tokens[:, :-1].to(device), tokens[:, 1:].to(device)


def sample_batch(tokens, batch: int, context: int, device="cpu", seed: int = 0, vocab=None,
                 source: str = "data_path"):
    """Random windows of a 1-d token array (the zoo's get_batch; a memmap is read only where
    sampled); ids must be in [0, vocab). Errors name `source` (the file) and its tokens."""
    from benchlab.zoo.data import random_batch as zoo_batch

    if len(tokens) < context + 2:
        raise fail(str(source), "tokens", f"{len(tokens)} tokens: fewer than context_length + 2 "
                   f"= {context + 2}")
    rows = zoo_batch(tokens, batch, context, seed=seed)  # (batch, context + 1)
    if int(rows.min()) < 0:
        raise fail(str(source), "tokens", f"negative id {int(rows.min())}")
    if vocab is not None and int(rows.max()) >= vocab:
        raise fail(str(source), "tokens", f"id {int(rows.max())} >= vocab {vocab}")
    return rows[:, :-1].to(device), rows[:, 1:].to(device)


def build_model(impl: str, cfg: ModelConfig, device="cpu", seed: int = 0):
    """(model, logits_fn) for impl "ours" or "peer" (transformers LLaMA), float32, train mode."""
    torch.manual_seed(seed)
    if impl == "ours":
        with torch.device(device):
            model = TransformerLM(cfg)
        return model.train(), model
    if impl == "peer":
        from .peer import build_llama, llama_logits

        model = build_llama(cfg, device=device).train()
        return model, functools.partial(llama_logits, model)
    raise BenchlabError(f"lm_timing: impl: {impl!r} is not one of ours, peer")


def make_step(model, logits_fn, x, y, mode: str, precision: str, device: str, optimizer=None):
    """The closure that runs one step: autocast forward + loss, then backward, then AdamW."""
    device_type = "cuda" if str(device).startswith("cuda") else "cpu"
    autocast = precision != "fp32"
    dtype = DTYPES[precision]

    def step():
        with torch.autocast(device_type, dtype=dtype, enabled=autocast):
            loss = lm_loss(logits_fn(x), y)
        if mode != "forward":
            model.zero_grad(set_to_none=True)
            loss.backward()
            if optimizer is not None:
                optimizer.step()
        return loss.detach()

    return step


def prepare(size: str | ModelConfig, context: int, mode: str, precision: str, *, device="cpu",
            impl="ours", attn="sdpa", batch=4, vocab=10_000, compile=False,
            compile_backend="inductor", seed=0, tokens=None, tokens_source="data_path",
            shared: dict | None = None) -> Prepared:
    """Build everything for one case; raise BenchlabError for a combination that cannot run.
    `shared`: a dict in which steps of one model configuration share their model and AdamW
    state (steps timed side by side: one model's memory, not one per step)."""
    check_choice(mode, MODES, "mode")
    check_choice(precision, PRECISIONS, "precision")
    check_choice(attn, ("sdpa", "einsum"), "attn")
    if precision == "fp16" and not str(device).startswith("cuda"):
        raise BenchlabError("lm_timing: precision: fp16 autocast is GPU-only (about 100x slower "
                            "on CPU); use bf16")
    base = size if isinstance(size, ModelConfig) else size_config(size)
    cfg = replace(base, vocab_size=vocab, context_length=max(context, base.context_length),
                  attn=attn)
    shared = {} if shared is None else shared
    if (impl, cfg) not in shared:
        shared[impl, cfg] = build_model(impl, cfg, device, seed)
    model, logits_fn = shared[impl, cfg]
    if compile:
        logits_fn = torch.compile(logits_fn, backend=compile_backend)
    if tokens is None:
        x, y = random_batch(vocab, batch, context, device, seed)
    else:
        x, y = sample_batch(tokens, batch, context, device, seed, vocab, tokens_source)
    opt = None
    if mode == "train_step":
        if (impl, cfg, "adamw") not in shared:
            shared[impl, cfg, "adamw"] = torch.optim.AdamW(model.parameters(), lr=1e-4)
        opt = shared[impl, cfg, "adamw"]
    step = make_step(model, logits_fn, x, y, mode, precision, device, opt)
    return Prepared(step, model, cfg, batch, context, mode, precision, str(device),
                    num_params(cfg), step_flops(cfg, batch, context, mode))


# -- peak FLOP/s, memory, OOM -----------------------------------------------------------------

def peak_n(device: str, precision: str) -> int:
    """The matmul size of the peak: 8192 on CUDA; on CPU 2048, and 1024 in bf16, which a CPU
    without native bf16 (AVX2 only, as some AMD EPYC here) runs at about 1 GFLOP/s (a 2048
    matmul there takes about 20 s)."""
    if str(device).startswith("cuda"):
        return 8192
    return 1024 if precision == "bf16" else 2048


@functools.cache
def matmul_peak(device: str, precision: str, n: int | None = None, reps: int = 3) -> float:
    """FLOP/s of the best of `reps` n x n matmuls in the precision's dtype on `device`, the
    denominator of MFU (measured in the same run, so MFU is against this machine's own best)."""
    from benchlab.core.timing import time_fn  # looked up per call (tests replace it)

    n = n or peak_n(device, precision)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device=device, dtype=DTYPES[precision])
    b = torch.randn(n, n, generator=g).to(device=device, dtype=DTYPES[precision])
    times = time_fn(lambda: a @ b, device, warmup=1, trials=reps)
    return 2 * n**3 / min(times)


def estimate_bytes(cfg: ModelConfig, batch: int, context: int, mode: str, precision: str) -> int:
    """A generous estimate of a step's memory: weights, grads, AdamW state, bf16 weight copies,
    saved activations (about 10 d + 4 d_ff floats per token and layer), attention scores on the
    einsum path, logits. Used on CPU to refuse a case before the kernel's OOM killer does."""
    P, d, f, L = num_params(cfg), cfg.d_model, cfg.d_ff, cfg.num_layers
    tokens = batch * context
    state = 4 * P * (1 + (mode != "forward") + 2 * (mode == "train_step"))
    state += 2 * P * (precision != "fp32")
    act = 4 * tokens * L * (10 * d + 4 * f)
    if cfg.attn == "einsum":
        act += 4 * 3 * batch * cfg.num_heads * context * context * L
    logits = 4 * 3 * tokens * cfg.vocab_size
    return int(1.5 * (state + act + logits))


def available_bytes(device) -> int:
    if str(device).startswith("cuda"):
        return torch.cuda.mem_get_info(device)[0]
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 1 << 62


def is_oom(exc: BaseException) -> bool:
    """True for CUDA's OutOfMemoryError and the CPU allocator's 'not enough memory'."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("not enough memory" in text
                                              or "out of memory" in text.lower())


def release(device) -> None:
    gc.collect()
    if str(device).startswith("cuda"):
        torch.cuda.empty_cache()


def oom_reason(size, context: int, mode: str, precision: str, *, device="cpu", attn="sdpa",
               batch=4, vocab=10_000) -> str | None:
    """Why a CPU case would not fit (estimate vs MemAvailable), else None. On CUDA the real
    OutOfMemoryError is caught instead (see is_oom)."""
    if str(device).startswith("cuda"):
        return None
    base = size if isinstance(size, ModelConfig) else size_config(size)
    cfg = replace(base, vocab_size=vocab, attn=attn)
    need, have = estimate_bytes(cfg, batch, context, mode, precision), available_bytes(device)
    if need > 0.8 * have:
        return f"OOM (estimated {need / 2**30:.1f} GiB > 80% of {have / 2**30:.1f} GiB available)"
    return None


# -- metrics ------------------------------------------------------------------------------------

def summarize(trial_seconds, prep: Prepared, *, peak_flops: float | None = None,
              peak_bytes: int | None = None, by: str = "mean") -> dict:
    """Time statistics (ms), tokens/s, model FLOPs, achieved TFLOP/s and MFU of one case; the
    rates from the `by` time ("mean", the seed's; "median" of rounds timed side by side)."""
    ms = [1000 * t for t in trial_seconds]
    d = describe(ms)
    step_s = d[by] / 1000
    out = {
        "status": "ok", "num_params": prep.num_params, "flops": prep.flops,
        "trial_times_ms": ms, "mean_ms": d["mean"], "std_ms": d["std"], "median_ms": d["median"],
        "min_ms": d["min"], "tokens_per_s": prep.batch * prep.context / step_s,
        "tflops": prep.flops / step_s / 1e12,
    }
    if peak_flops:
        out["peak_tflops"] = peak_flops / 1e12
        out["mfu"] = prep.flops / step_s / peak_flops
    if peak_bytes is not None:
        out["peak_memory_mb"] = peak_bytes / 2**20
    return out
