"""Briefly trained tiny models, cached as safetensors: routers and ReLUs that look trained.

    python -c "from benchlab import zoo; print(zoo.train_stats('olmoe-tiny'))"

Random init is not what the experiments measure (near-uniform routers, ~50% ReLU sparsity, no
heavy-tailed spectra), so `trained` runs a short AdamW schedule on the zoo corpus. The default
schedule of each tiny spec (seed 0) is a pinned artifact shipped with the package (zoo.manifest: the
same bytes on every machine); any other schedule or seed is trained here (CPU, about a minute for
a tiny spec) and cached under cache_dir()/zoo/models/ with a JSON sidecar holding the file's
sha256 and the training statistics. A file whose hash, size or header does not
match is deleted and rebuilt, never used. Writes are atomic (temp file + os.replace) under a file
lock, so concurrent pytest-xdist workers train a model once.
"""

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..core.errors import BenchlabError
from ..core.provenance import config_hash, sha256_file
from . import manifest
from .batches import token_batches
from .cache import atomic_path, cache_dir, locked, zoo_version
from .models import build, spec
from .tokenize import corpus_tokens


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 300
    batch_size: int = 8
    seq_len: int = 128
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup: int = 20
    weight_decay: float = 0.1
    grad_clip: float = 1.0


TRAIN = {  # default schedule per scale
    "tiny": TrainConfig(),
    "small": TrainConfig(steps=100, batch_size=8, seq_len=256, lr=6e-4, min_lr=6e-5, warmup=10),
}
TRAINING_RUNS: list[str] = []  # names trained by this process (tests count cache misses)


def train_config(name: str, steps: int | None = None) -> TrainConfig:
    s = spec(name)
    if s.scale not in TRAIN:
        raise BenchlabError(f"model {name!r}: {s.scale} spec; trained() is for tiny and small "
                            "specs, load() the published weights instead")
    cfg = TRAIN[s.scale]
    return cfg if steps is None else replace(cfg, steps=int(steps))


def cache_path(name: str, steps: int | None = None, seed: int = 0) -> Path:
    """The safetensors file of a trained model (its sidecar: same name, .json)."""
    cfg = train_config(name, steps)
    key = config_hash({"spec": spec(name), "train": cfg, "seed": seed, "zoo": zoo_version()})
    return cache_dir() / "zoo" / "models" / f"{name}-steps{cfg.steps}-seed{seed}-{key}.safetensors"


def _lr(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * frac))


def _threads() -> int:
    """Intra-op threads for training: all cores when idle, fewer when the machine is busy
    (oversubscribed OpenMP threads on a shared machine spin instead of working)."""
    free = (os.cpu_count() or 1) - os.getloadavg()[0]
    return max(1, min(torch.get_num_threads(), round(free)))


def train_model(name: str, cfg: TrainConfig, seed: int = 0, threads: int | None = None):
    """Train a fresh build(name, seed) with AdamW + cosine schedule; returns (model, stats).
    `threads` fixes the intra-op thread count (pinned builds use 1: bit-identical reruns)."""
    TRAINING_RUNS.append(name)
    before = torch.get_num_threads()
    torch.set_num_threads(threads or _threads())
    try:
        return _train(name, cfg, seed)
    finally:
        torch.set_num_threads(before)


def _train(name: str, cfg: TrainConfig, seed: int):
    from .probes import summary

    device = "cuda" if torch.cuda.is_available() else "cpu"  # small specs need a GPU for speed
    model = build(name, seed=seed).to(device)
    before = summary(model)
    tokens = corpus_tokens("train")
    # no weight decay on norms, biases, embeddings and MoE routers (decay pulls routers uniform)
    plain = {n for n, p in model.named_parameters()
             if p.dim() < 2 or "embed" in n or n.endswith("mlp.gate.weight")}
    decay = [p for n, p in model.named_parameters() if n not in plain]
    no_decay = [p for n, p in model.named_parameters() if n in plain]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(0.9, 0.95))
    extra = {"output_router_logits": True} if model.config.model_type == "olmoe" else {}
    t0, cpu0 = time.perf_counter(), time.process_time()
    model.train()
    batches = token_batches(tokens, cfg.batch_size, cfg.seq_len, seed=seed, steps=cfg.steps)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        bar = tqdm(batches, total=cfg.steps, desc=f"training {name}", mininterval=2)
        for step, batch in enumerate(bar):  # batch: (B, T + 1); HF shifts the labels itself
            for group in opt.param_groups:
                group["lr"] = _lr(cfg, step)
            batch = batch.to(device)
            loss = model(input_ids=batch, labels=batch, **extra).loss  # MoE: + balancing loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    stats = {"name": name, "seed": seed, "train": asdict(cfg), "device": device,
             "threads": torch.get_num_threads(),
             "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - cpu0,
             "before": before, "after": summary(model), "zoo_version": zoo_version()}
    return model.cpu(), stats


def state_of(model) -> dict:
    # tied weights (lm_head = embed_tokens) are stored once; load_state_dict re-ties them
    seen, out = set(), {}
    for k, v in model.state_dict().items():
        if v.data_ptr() in seen:
            continue
        seen.add(v.data_ptr())
        out[k] = v.detach().contiguous()
    return out


def _load_state(model, state: dict):
    model.load_state_dict(state, strict=False)
    missing = set(model.state_dict()) - set(state)
    tied = {k for k in missing if "lm_head" in k and model.config.tie_word_embeddings}
    if missing - tied:
        raise ValueError(f"missing tensors {sorted(missing - tied)[:3]}")
    return model.eval()


def _read_cached(path: Path, name: str, seed: int):
    """The cached model, or None when the file is missing or fails its checks (then deleted)."""
    sidecar = path.with_suffix(".json")
    if not path.exists() and not sidecar.exists():
        return None
    try:
        meta = json.loads(sidecar.read_text())
        if path.stat().st_size != meta["bytes"] or sha256_file(path) != meta["sha256"]:
            raise ValueError("size or sha256 differs from the sidecar")
        return _load_state(build(name, seed=seed), load_file(path))
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as e:
        tqdm.write(f"benchlab.zoo: cached {path.name} is unusable ({e}); rebuilding",
                   file=sys.stderr)
        path.unlink(missing_ok=True)
        sidecar.unlink(missing_ok=True)
        return None


def pinned(name: str, steps: int | None = None, seed: int = 0) -> bool:
    """Is this the shipped artifact (a tiny spec, its default schedule, seed 0)? One that should
    be but that the manifest lacks is a BenchlabError, not a silent retraining from scratch."""
    if seed != 0 or train_config(name, steps) != train_config(name):
        return False
    if name in manifest.MODELS and not manifest.is_pinned(name):
        raise BenchlabError(f"{manifest.MANIFEST}: files: lacks {manifest.file_name(name)!r}, "
                            "a pinned zoo model (restore the manifest from git, or run "
                            "`benchlab zoo pin`)")
    return manifest.is_pinned(name)


def _read_pinned(name: str):
    path = manifest.path(name)  # sha256-checked: a mismatch is a BenchlabError naming the file
    try:
        return _load_state(build(name), load_file(path))
    except (OSError, ValueError, SafetensorError) as e:
        raise BenchlabError(f"{path}: not the pinned {name} weights ({e})") from None


def trained(name: str, *, steps: int | None = None, seed: int = 0):
    """A tiny/small spec trained on the zoo corpus (cached; float32, eval mode, on CPU).

    Training runs on CUDA when available. Tiny specs take about a minute of CPU; the small
    specs (30-90M parameters, 100 steps of 8 x 256 tokens) take a minute or two on one GPU and
    about half an hour on one CPU core (opt-125m-shape: 20 s a step)."""
    if pinned(name, steps, seed):
        return _read_pinned(name)
    cfg = train_config(name, steps)
    path = cache_path(name, steps, seed)
    with locked(path):
        model = _read_cached(path, name, seed)
        if model is not None:
            return model
        model, stats = train_model(name, cfg, seed)
        with atomic_path(path) as tmp:
            save_file(state_of(model), str(tmp), metadata={"name": name, "zoo": zoo_version()})
            stats.update(bytes=tmp.stat().st_size, sha256=sha256_file(tmp))
            with atomic_path(path.with_suffix(".json")) as tmp_meta:
                tmp_meta.write_text(json.dumps(stats, indent=1, sort_keys=True))
    return model


def train_stats(name: str, *, steps: int | None = None, seed: int = 0) -> dict:
    """The training statistics of a trained model: the manifest's for a pinned one, else the
    sidecar of the cached one (trained first if needed)."""
    if pinned(name, steps, seed):
        return manifest.manifest()["training"][name]
    path = cache_path(name, steps, seed)
    if not path.with_suffix(".json").exists():
        trained(name, steps=steps, seed=seed)
    return json.loads(path.with_suffix(".json").read_text())
