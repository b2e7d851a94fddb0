"""The pieces of fine-tuning (the command is trainer.py): tokenizing, packing, steps, memory,
checkpoints. Records are packed nanoGPT-style, each followed by end-of-text: no padding (the
artifact's inputs were mostly padding, which inflates sparsity and speedups).

    benchlab long-exposure finetune --model opt-tiny --method lora --mode le --steps 20 \
        --out runs/demo
"""

import json
import time
from pathlib import Path

import torch

from benchlab.core.errors import BenchlabError

from .e2e import record_text


def tokenizer_for(model_name: str):
    """The tokenizer of the model's vocabulary: the zoo BPE for tiny/small specs, else
    zoo.load_tokenizer (a checkpoint directory carries its own)."""
    from benchlab import zoo

    if not Path(model_name).is_dir() and zoo.spec(model_name).hub_id is None:
        return zoo.tokenizer("bpe")
    return zoo.load_tokenizer(model_name)


def hf_tokenizer(model_name: str):
    """tokenizer_for(model_name) as a transformers tokenizer (save_pretrained-able)."""
    tok = tokenizer_for(model_name)
    return tok.to_transformers() if hasattr(tok, "to_transformers") else tok


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of `text` (works for HF tokenizers and raw `tokenizers.Tokenizer`)."""
    out = tokenizer.encode(text)
    return list(out.ids) if hasattr(out, "ids") else list(out)


def eos_id(tokenizer, default: int = 0) -> int:
    for name in ("eos_token_id", "eot_id"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, int):
            return value
    return default


def pack(docs: list[list[int]], seq_len: int, eos: int) -> torch.Tensor:
    """Concatenate documents, each followed by `eos`, into rows of `seq_len` tokens: (N, seq_len).
    The tail shorter than a row is dropped; raises if there is not a single full row."""
    stream = [t for doc in docs for t in (*doc, eos)]
    n = len(stream) // seq_len
    if n == 0:
        raise BenchlabError(f"records: {len(stream)} tokens, fewer than one row of {seq_len}")
    return torch.tensor(stream[: n * seq_len], dtype=torch.long).view(n, seq_len)


def packed_rows(records: list[dict], tokenizer, seq_len: int) -> torch.Tensor:
    """(N, seq_len) LongTensor of packed records."""
    docs = [encode(tokenizer, record_text(r)) for r in records]
    return pack(docs, seq_len, eos_id(tokenizer))


def batches(rows: torch.Tensor, batch_size: int, steps: int) -> list[torch.Tensor]:
    """`steps` batches of shape (batch_size, seq_len), cycling through the rows in order."""
    if rows.shape[0] < batch_size:
        raise BenchlabError(f"records: {rows.shape[0]} packed rows, fewer than batch {batch_size}")
    n = rows.shape[0] // batch_size
    return [rows[(s % n) * batch_size:(s % n + 1) * batch_size] for s in range(steps)]


def make_optimizer(model, lr: float = 1e-3):
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise BenchlabError("model: no trainable parameters")
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.0)


def autocast(batch: torch.Tensor, bf16: bool):
    """bf16 autocast on the batch's device type (CPU or CUDA), or a no-op context."""
    import contextlib

    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(batch.device.type, dtype=torch.bfloat16)


def train_step(model, opt, batch: torch.Tensor, bf16: bool = False) -> float:
    """One optimizer step of causal-LM loss on a packed (B, T) batch; returns the loss.
    `bf16`: forward and backward under bf16 autocast (weights and optimizer stay float32)."""
    with autocast(batch, bf16):
        out = model(input_ids=batch, labels=batch)
    out.loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(out.loss.detach())


def reduce_stats(stats, info):
    """LE statistics summed over a data-parallel run's processes (the global batches'
    densities); `mask_seconds` stays this process's."""
    from benchlab.core import ddp

    from .patch import Stats

    if not info.active:
        return stats
    kinds, layers = ("attn", "mlp", "doc"), sorted(stats.per_layer)
    names = ("attn_kept", "attn_total", "mlp_kept", "mlp_total", "doc_kept", "dense_runs")
    flat = [getattr(stats, n) for n in names]
    flat += [n for i in layers for k in kinds for n in stats.per_layer[i].get(k, (0, 0))]
    got = ddp.total(torch.tensor(flat, dtype=torch.int64), info).tolist()
    out = Stats(**dict(zip(names, got[:len(names)], strict=True)),
                mask_seconds=stats.mask_seconds)
    it = iter(got[len(names):])
    out.per_layer = {i: {k: [next(it), next(it)] for k in kinds} for i in layers}
    return out


def finetune(model, data: list[torch.Tensor], *, lr: float = 1e-3, progress: bool | None = False,
             desc: str = "finetune"):
    """Train on each batch of `data` once; returns (losses, seconds per step). `progress`: a
    tqdm bar; None: one once the loop has run a second."""
    from tqdm.auto import tqdm

    model.train()
    opt = make_optimizer(model, lr)
    losses, secs = [], []
    for batch in tqdm(data, desc=desc, disable=progress is False, leave=progress is not None,
                      delay=1.0 if progress is None else 0.0):
        t0 = time.perf_counter()
        losses.append(train_step(model, opt, batch))
        secs.append(time.perf_counter() - t0)
    return losses, secs


def step_memory(model, batch: torch.Tensor) -> dict:
    """One step's training memory in bytes, counted from tensors (device-independent):
    weights, gradients + AdamW moments, and activations saved for backward (unique storages)."""
    seen: dict = {}

    def pack_hook(t):
        try:
            key = (t.untyped_storage().data_ptr(), t.device.type)
            seen[key] = max(seen.get(key, 0), t.untyped_storage().nbytes())
        except (RuntimeError, NotImplementedError):  # tensors without storage (e.g. sparse)
            pass
        return t

    uniq = {id(p): p for p in model.parameters()}.values()
    weights = sum(p.numel() * p.element_size() for p in uniq)
    trainable = sum(p.numel() * p.element_size() for p in uniq if p.requires_grad)
    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack_hook, lambda t: t):
        loss = model(input_ids=batch, labels=batch).loss
    param_ptrs = {p.untyped_storage().data_ptr() for p in uniq}
    activations = sum(v for (ptr, _), v in seen.items() if ptr not in param_ptrs)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return {"weights": weights, "grads_optimizer": 3 * trainable, "activations": activations,
            "total": weights + 3 * trainable + activations}


def save_checkpoint(model, outdir, *, method: str, meta: dict | None = None) -> Path:
    """Save a fine-tuned model as safetensors under a new `outdir`: LoRA merged, so full /
    bitfit / lora checkpoints are plain HF directories lm_eval reads; adapter keeps its modules."""
    from safetensors.torch import save_file

    outdir = Path(outdir)
    if outdir.exists() and any(outdir.iterdir()):
        raise BenchlabError(f"{outdir}: output directory exists and is not empty; not overwriting")
    outdir.mkdir(parents=True, exist_ok=True)
    if method == "lora":
        model = model.merge_and_unload()
    if method == "adapter":
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        state.pop("lm_head.weight", None)  # tied to the token embedding
        save_file(state, str(outdir / "model.safetensors"), metadata={"method": method})
        model.config.save_pretrained(outdir)
    else:
        model.save_pretrained(outdir, safe_serialization=True)
    (outdir / "benchlab_finetune.json").write_text(
        json.dumps({"method": method, **(meta or {})}, indent=1, sort_keys=True) + "\n")
    return outdir
