"""One point of the adaptive-allocation sweep: train a SubLoRA model, then bound it.

    python -c "from benchlab import sublora as sl; c = sl.CONFIGS['tiny']; \
print(sl.run_point(c, sl.sweep_cases(c)[0]))"

`run_point` returns the metrics a sweep record carries (the report reads these names):
    d, mode, ratio, seed, D (LoRA parameters), n_groups
    bound_value, empirical_bpd, raw_bpd, kl_divergence, compressed_size_bits, best_alpha,
    random_guess_bpd, non_vacuous, top{1,5,10}_error, top{1,5,10}_error_bound,
    m, s, extra_bits, message_bits,
    gamma_B        share of each group's coordinates on LoRA B, per layer (learned: the trained
                   sigmoid(g); fixed: d_B/d_g; uniform: empty list)
    val_loss       best validation loss (nats/token), best_step, final_train_loss,
    train_seconds, eval_seconds
"""

from dataclasses import dataclass, replace

import torch

from .config import RunConfig
from .data import get_batch, load_corpus
from .evaluate import eval_bounds
from .lora import add_lora
from .train import base_model, build_model, make_optimizer, train

METRIC_KEYS = ("bound_value", "empirical_bpd", "raw_bpd", "kl_divergence", "compressed_size_bits",
               "best_alpha", "random_guess_bpd", "non_vacuous", "m", "s", "extra_bits",
               "message_bits", "eval_seconds")


def run_config(config, case) -> RunConfig:
    """The RunConfig of a sweep case under a scale config (data only, no branching on names)."""
    c = RunConfig()
    return replace(
        c,
        data=replace(c.data, dataset_dir=config.dataset_dir, n_documents=config.n_documents,
                     batch_size=config.batch_size, block_size=config.block_size),
        training=replace(c.training, max_iters=config.max_iters, eval_interval=config.eval_interval,
                         eval_iters=config.eval_iters),
        optimizer=replace(c.optimizer, learning_rate=config.learning_rate),
        learning_rate=replace(c.learning_rate, warmup_iters=config.warmup_iters,
                              lr_decay_iters=config.max_iters),
        model=replace(c.model, name=config.model, init_from=config.init_from),
        sublora=replace(c.sublora, intrinsic_dim=case.d, allocation_mode=case.mode,
                        allocation_ratio=case.ratio, intrinsic_mode=config.projector,
                        linear_head_enable_lora=config.lm_head_lora, gating_lr=config.gating_lr,
                        dense_cache_mb=config.dense_cache_mb),
        bounds=replace(c.bounds, bound_samples=config.bound_samples, levels=config.levels,
                       max_doc_tokens=config.max_doc_tokens),
        system=replace(c.system, seed=case.seed))


_BASES: dict = {}


def cached_base(cfg: RunConfig):
    """A fresh deep copy of the (cached) base model: add_lora edits its argument in place."""
    import copy

    key = (cfg.model.name, cfg.model.init_from, cfg.model.base_steps,
           cfg.system.seed if cfg.model.init_from == "scratch" else None)
    if key not in _BASES:
        _BASES[key] = base_model(cfg)
    return copy.deepcopy(_BASES[key])


def run_point(config, case, *, device: str = "cpu", out_dir=None, progress: bool = False) -> dict:
    cfg = run_config(config, case)
    corpus = load_corpus(cfg)
    model = build_model(cfg, cached_base(cfg))
    model, res = train(cfg, corpus=corpus, model=model, device=device, progress=progress,
                       out_dir=out_dir)
    metrics = eval_bounds(model, corpus, cfg, device=device, out_dir=out_dir)
    out = {"d": case.d, "mode": case.mode, "ratio": case.ratio, "seed": case.seed,
           "D": model.D, "n_groups": len(model.groups) or len(model.d_share_B()),
           "gamma_B": model.d_share_B(), "val_loss": res.best_val, "best_step": res.best_step,
           "final_train_loss": res.losses[-1], "train_seconds": res.seconds}
    out.update({k: metrics[k] for k in METRIC_KEYS})
    out.update({k: v for k, v in metrics.items() if k.startswith("top") and "error" in k})
    return out


@dataclass(frozen=True)
class _Point:
    d: int
    mode: str
    ratio: float
    seed: int


def step_pair(config, d: int, projector: str, device: str = "cpu"):
    """(model, subspace step, plain LoRA step): one AdamW step each on the same batch (uniform
    allocation, `projector`), the LoRA baseline with the same rank, alpha and targets."""
    cfg = run_config(config, _Point(d, "uniform", 0.5, 0))
    cfg = replace(cfg, sublora=replace(cfg.sublora, intrinsic_mode=projector))
    corpus = load_corpus(cfg)
    x, y = get_batch(corpus.train, seed=1, step=0, batch=cfg.data.batch_size,
                     block=cfg.data.block_size, device=device)
    sub = build_model(cfg, cached_base(cfg)).to(device).train()
    sub_opt = make_optimizer(sub, cfg)
    plain = cached_base(cfg)
    add_lora(plain, rank=cfg.sublora.attention_linear_lora_r, alpha=cfg.sublora.lora_alpha,
             lm_head=cfg.sublora.linear_head_enable_lora)
    plain.to(device)
    lora_params = [p for p in plain.parameters() if p.requires_grad]
    plain_opt = torch.optim.AdamW(lora_params, lr=cfg.optimizer.learning_rate)
    sub_params = [p for p in (sub.w, sub.gates) if p.requires_grad]

    def sub_step():
        loss = sub.loss(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(sub_params, 1.0)
        sub_opt.step()
        sub_opt.zero_grad(set_to_none=True)

    def lora_step():
        logits = plain(x).logits
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lora_params, 1.0)
        plain_opt.step()
        plain_opt.zero_grad(set_to_none=True)

    return sub, sub_step, lora_step
