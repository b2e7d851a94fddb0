"""Train w (and the learned gates) of a SubLoRA model: AdamW, warm-up + cosine, clipping, evals.

    benchlab sublora train --config-file cfg.yaml --sublora.intrinsic_dim=1000
    torchrun --standalone --nproc_per_node=2 -m benchlab.sublora.cli train --config-file cfg.yaml

Each step draws one *global* batch of world x batch_size windows seeded by (run seed, step,
micro-step); process k takes rows [k B, (k+1) B), so 2 DDP processes of batch B see the batch of
1 process of 2B, and a fixed seed repeats a run bit for bit on the CPU. The best checkpoint is
`best_ckpt.safetensors` (w, gates) + `best_ckpt.json` (config, layout, step, val loss);
`last_ckpt.pt` (with the optimizer state) lets a killed run resume from its last eval.
"""

import json
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..core import ddp
from ..core.errors import fail, read_json
from ..core.provenance import code_version
from ..core.store import atomic_path
from .config import RunConfig
from .data import Corpus, get_batch, load_corpus
from .projectors import derive_seed
from .subspace import SubspaceConfig, SubspaceModel

BEST, BEST_META, LAST = "best_ckpt.safetensors", "best_ckpt.json", "last_ckpt.pt"


def subspace_config(cfg: RunConfig) -> SubspaceConfig:
    s = cfg.sublora
    return SubspaceConfig(
        intrinsic_dim=s.intrinsic_dim, allocation_mode=s.allocation_mode,
        allocation_ratio=s.allocation_ratio, projector=s.intrinsic_mode,
        lora_r=s.attention_linear_lora_r, lora_alpha=s.lora_alpha,
        lm_head_lora=s.linear_head_enable_lora, lora_dropout=s.lora_dropout,
        gating_scale=s.gating_scale, gating_init=s.gating_init, dense_cache_mb=s.dense_cache_mb)


def base_model(cfg: RunConfig):
    """theta0's frozen part: the zoo model named by `model` (random, zoo-trained, or a dir)."""
    from .. import zoo

    m = cfg.model
    if m.init_from in ("scratch", "zoo-trained"):
        _check_shape(m, zoo.hf_config(m.name))  # before building: fail fast on a wrong shape
    if m.init_from == "scratch":
        net = zoo.build(m.name, seed=derive_seed(cfg.system.seed, "base") % 2**31)
    elif m.init_from == "zoo-trained":
        net = zoo.trained(m.name, steps=m.base_steps or None)
    else:
        net = zoo.load(m.init_from)
        _check_shape(m, net.config)
    return net.float().eval()


def _check_shape(m, hc) -> None:
    for key in ("n_layer", "n_head", "n_embd"):
        want, have = getattr(m, key), getattr(hc, key)
        if want and want != have:
            raise fail("config", f"model.{key}", f"{want} does not match {m.name}'s {have}")


def build_model(cfg: RunConfig, base=None) -> SubspaceModel:
    return SubspaceModel(base if base is not None else base_model(cfg), subspace_config(cfg),
                         seed=cfg.system.seed)


def lr_at(it: int, cfg: RunConfig) -> float:
    """Linear warm-up to learning_rate, then cosine down to min_lr_ratio * learning_rate."""
    lr, sched = cfg.optimizer.learning_rate, cfg.learning_rate
    if it < sched.warmup_iters:
        return lr * (it + 1) / sched.warmup_iters
    decay = max(1, sched.lr_decay_iters - sched.warmup_iters)
    t = min(1.0, (it - sched.warmup_iters) / decay)
    return lr * (sched.min_lr_ratio + (1 - sched.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def make_optimizer(model: SubspaceModel, cfg: RunConfig) -> torch.optim.AdamW:
    o = cfg.optimizer
    groups = [{"params": [model.w], "weight_decay": o.weight_decay, "lr": o.learning_rate,
               "base_lr": o.learning_rate}]
    if model.groups:  # learned gates: own learning rate, no weight decay
        groups.append({"params": [model.gates], "weight_decay": 0.0,
                       "lr": cfg.sublora.gating_lr, "base_lr": cfg.sublora.gating_lr})
    return torch.optim.AdamW(groups, betas=(o.beta1, o.beta2), eps=o.adam_epislon)


@dataclass
class TrainResult:
    losses: list = field(default_factory=list)       # global-batch train loss per step
    evals: list = field(default_factory=list)        # (step, val loss)
    best_val: float = float("inf")
    best_step: int = -1
    best_w: torch.Tensor | None = None
    best_gates: torch.Tensor | None = None
    seconds: float = 0.0


@torch.no_grad()
def evaluate(model: SubspaceModel, corpus: Corpus, cfg: RunConfig, device,
             dist: ddp.Dist | None = None) -> float:
    """Mean loss over eval_iters fixed global validation batches (the same at every eval);
    each process takes its rows, as in training, so DDP and one process agree."""
    dist = dist or ddp.Dist()
    model.eval()
    seed = derive_seed(cfg.system.seed, "val")
    losses = []
    for k in range(cfg.training.eval_iters):
        x, y = get_batch(corpus.val, seed=seed, step=k, batch=cfg.data.batch_size,
                         block=cfg.data.block_size, rank=dist.rank, world=dist.world,
                         device=device)
        losses.append(model.loss(x, y).detach().cpu())
    return float(ddp.mean(torch.stack(losses).mean(), dist))


def train(cfg: RunConfig, *, corpus: Corpus | None = None, model: SubspaceModel | None = None,
          out_dir: str | Path | None = None, device: str = "cpu", progress: bool | None = True,
          dist: ddp.Dist | None = None, reuse_finished: bool = False
          ) -> tuple[SubspaceModel, TrainResult]:
    """Train cfg's model; returns it (best w and gates loaded) and the history. `progress`: a tqdm
    bar (None: once training has run a second; False: none). With `reuse_finished` an out_dir
    holding this config's finished run is loaded, not refused (run-all's resume)."""
    dist = dist or ddp.Dist()
    corpus = corpus or load_corpus(cfg)
    torch.manual_seed(derive_seed(cfg.system.seed, "torch") % 2**63)
    model = model or build_model(cfg)
    model.to(device)
    net = ddp.wrap(model, dist, device)
    opt = make_optimizer(model, cfg)
    res, start = TrainResult(), 0
    out = Path(out_dir) if out_dir else None
    if out is not None:
        start = _prepare_out(out, cfg, model, opt, res, reuse_finished)
    t, o, seed = cfg.training, cfg.optimizer, derive_seed(cfg.system.seed, "train")
    params = [p for p in (model.w, model.gates) if p.requires_grad]
    t0 = time.perf_counter()
    bar = tqdm(range(start, t.max_iters), desc=f"sublora train d={cfg.sublora.intrinsic_dim} "
               f"{cfg.sublora.allocation_mode}", leave=False, delay=1.0 if progress is None else 0,
               disable=progress is False or not dist.main)
    for it in bar:
        scale = lr_at(it, cfg) / o.learning_rate
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * scale
        model.train()
        step_loss = torch.zeros(())
        for micro in range(t.gradient_accumulation_steps):
            x, y = get_batch(corpus.train, seed=seed, step=it, micro=micro,
                             batch=cfg.data.batch_size, block=cfg.data.block_size,
                             rank=dist.rank, world=dist.world, device=device)
            last = micro == t.gradient_accumulation_steps - 1
            with net.no_sync() if dist.active and not last else nullcontext():
                loss = F.cross_entropy(net(x).flatten(0, 1), y.flatten())
                loss = loss / t.gradient_accumulation_steps
                loss.backward()
            step_loss += loss.detach().cpu()
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, t.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        res.losses.append(float(ddp.mean(step_loss, dist)))
        if it % t.log_interval == 0:
            bar.set_postfix(loss=f"{res.losses[-1]:.4f}")
        if (it + 1) % t.eval_interval == 0 or it + 1 == t.max_iters:
            val = evaluate(model, corpus, cfg, device, dist)
            res.evals.append((it + 1, val))
            if val < res.best_val or t.always_save_checkpoint:
                res.best_val, res.best_step = min(val, res.best_val), it + 1
                res.best_w = model.w.detach().clone()
                res.best_gates = model.gates.detach().clone()
                if out is not None and dist.main:
                    _save_best(out, cfg, model, res, val)
            if out is not None and dist.main:
                _save_last(out, model, opt, res, it + 1)
    res.seconds = time.perf_counter() - t0
    if res.best_w is not None:
        with torch.no_grad():
            model.w.copy_(res.best_w)
            model.gates.copy_(res.best_gates)
    model.eval()
    return model, res


def _save_best(out: Path, cfg, model, res, val):
    with atomic_path(out / BEST) as tmp:
        save_file({"w": model.w.detach().cpu().contiguous(),
                   "gates": model.gates.detach().cpu().contiguous()}, str(tmp))
    meta = {"config": asdict(cfg), "layout": model.describe(), "step": res.best_step,
            "val_loss": val, "gamma_B": model.d_share_B(), "code_version": code_version(),
            "evals": res.evals}
    with atomic_path(out / BEST_META) as tmp:
        tmp.write_text(json.dumps(meta, indent=1))


def _save_last(out: Path, model, opt, res, step: int):
    state = {"w": model.w.detach().cpu(), "gates": model.gates.detach().cpu(),
             "opt": opt.state_dict(), "step": step, "losses": res.losses,
             "evals": [list(e) for e in res.evals], "best_val": res.best_val,
             "best_step": res.best_step}
    with atomic_path(out / LAST) as tmp:
        torch.save(state, tmp)


def _prepare_out(out: Path, cfg, model, opt, res, reuse_finished: bool = False) -> int:
    """Resume from out/last_ckpt.pt when it belongs to this config; refuse a foreign run."""
    meta, last = out / BEST_META, out / LAST
    if not meta.exists():
        return 0
    saved = json.loads(meta.read_text()).get("config")
    if saved != json.loads(json.dumps(asdict(cfg))):
        raise fail(str(meta), "config", "out_dir holds another run; choose a new login.out_dir")
    state = torch.load(last, weights_only=True) if last.exists() else None
    if state is None or (state["step"] >= cfg.training.max_iters and not reuse_finished):
        raise fail(str(out), "login.out_dir", "holds a finished run; results are never overwritten")
    with torch.no_grad():
        model.w.copy_(state["w"])
        model.gates.copy_(state["gates"])
    opt.load_state_dict(state["opt"])
    res.losses, res.evals = list(state["losses"]), [tuple(e) for e in state["evals"]]
    res.best_val, res.best_step = state["best_val"], state["best_step"]
    best = load_file(str(out / BEST))
    res.best_w, res.best_gates = best["w"], best["gates"]
    return int(state["step"])


def untrained(cfg: RunConfig, corpus: Corpus, model: SubspaceModel, *, device="cpu",
              out_dir: str | Path | None = None) -> tuple[SubspaceModel, TrainResult]:
    """The w = 0 baseline: no step taken; its val loss, and (with out_dir) a step-0 checkpoint."""
    model.to(device)
    res = TrainResult(best_step=0)
    res.best_val = evaluate(model, corpus, cfg, device)
    res.evals = [(0, res.best_val)]
    if out_dir is not None:
        out = Path(out_dir)
        if (out / BEST_META).exists():
            _, meta = load_checkpoint(out)
            if meta.get("config") != json.loads(json.dumps(asdict(cfg))):
                raise fail(str(out / BEST_META), "config", "out_dir holds another run")
        else:
            _save_best(out, cfg, model, res, res.best_val)
    model.eval()
    return model, res


def load_checkpoint(out_dir: str | Path) -> tuple[dict, dict]:
    """(tensors {w, gates}, metadata) of a training run's best checkpoint; a missing, truncated
    or unreadable file is a one-line BenchlabError naming it."""
    out = Path(out_dir)
    for p in (out / BEST, out / BEST_META):
        if not p.exists():
            raise fail(str(p), "checkpoint", "missing; run `benchlab sublora train` first")
    try:
        tensors = load_file(str(out / BEST))
    except Exception as e:  # safetensors raises its own error types for a damaged file
        raise fail(str(out / BEST), "checkpoint", f"unreadable (truncated?): {e}") from None
    for key in ("w", "gates"):
        if key not in tensors:
            raise fail(str(out / BEST), key, "missing from the checkpoint")
    meta = read_json(out / BEST_META, "checkpoint metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise fail(str(out / BEST_META), "config", "missing: not a SubLoRA checkpoint")
    return tensors, meta
