"""One point of the sweep: train a SubLoRA model (not for the w = 0 row), then bound it.

    python -c "from benchlab import sublora as sl; c = sl.CONFIGS['tiny']; \
print(sl.run_point(c, sl.sweep_cases(c)[0]))"

A sweep record's metrics (the report reads these names): d, mode (w0, unigram, bigram, uniform,
grouped, fixed, learned), ratio, seed, D (LoRA parameters; count models: table entries),
n_groups, init_from (theta0's base), the bound's METRIC_KEYS and top{k}_error(_bound), gamma_B
(per group, the share of coordinates on LoRA B: learned sigmoid(g), fixed d_B/d_g, uniform []),
val_loss (best, nats/token), best_step, final_train_loss, train_seconds.
"""

import copy
from dataclasses import replace
from types import SimpleNamespace

import torch

from .baselines import ORDERS, eval_ngram
from .config import RunConfig, apply, of_scale
from .data import get_batch, load_corpus
from .evaluate import eval_bounds
from .lora import add_lora
from .train import base_model, build_model, make_optimizer, train, untrained

METRIC_KEYS = ("bound_value", "empirical_bpd", "raw_bpd", "kl_divergence", "compressed_size_bits",
               "best_alpha", "random_guess_bpd", "non_vacuous", "m", "s", "extra_bits",
               "message_bits", "eval_seconds")


def run_config(config, case) -> RunConfig:
    """The scale's study with the case's d, mode, ratio and seed; w = 0 and the count models get
    the uniform layout (with w = 0 every layout is theta0)."""
    cfg = of_scale(config)
    mode = "uniform" if case.mode in ("w0", *ORDERS) else case.mode
    return apply(cfg, {"sublora": {"intrinsic_dim": case.d, "allocation_mode": mode,
                                   "allocation_ratio": case.ratio},
                       "system": {"seed": case.seed}}, f"case {getattr(case, 'id', case)}")


_BASES: dict = {}


def cached_base(cfg: RunConfig):
    """A fresh deep copy of the (cached) base model: add_lora edits its argument in place."""
    key = (cfg.model.name, cfg.model.init_from, cfg.model.base_steps,
           cfg.system.seed if cfg.model.init_from == "scratch" else None)
    if key not in _BASES:
        _BASES[key] = base_model(cfg)
    return copy.deepcopy(_BASES[key])


def run_point(config, case, *, device: str = "cpu", out_dir=None, progress: bool | None = None
              ) -> dict:
    """Train (unless w = 0) and bound one case; out_dir gets the checkpoint and bounds files (and
    a killed run resumes there). `progress`: train's bar."""
    cfg = run_config(config, case)
    corpus = load_corpus(cfg)
    if case.mode in ORDERS:
        return ngram_point(cfg, corpus, case)
    model = build_model(cfg, cached_base(cfg))
    if case.mode == "w0":
        model, res = untrained(cfg, corpus, model, device=device, out_dir=out_dir)
    else:
        model, res = train(cfg, corpus=corpus, model=model, device=device, progress=progress,
                           out_dir=out_dir)
    metrics = eval_bounds(model, corpus, cfg, device=device, out_dir=out_dir,
                          inputs={"baseline": case.mode == "w0"})
    return point_metrics(
        case, metrics, D=model.D, n_groups=len(model.groups) or len(model.d_share_B()),
        gamma_B=model.d_share_B(), val_loss=res.best_val, best_step=res.best_step,
        final_train_loss=res.losses[-1] if res.losses else res.best_val,
        train_seconds=res.seconds, init_from=cfg.model.init_from)


def point_metrics(case, metrics: dict, *, partial: bool = False, **fields) -> dict:
    """d, mode, ratio, seed, `fields`, then the METRIC_KEYS (with `partial`: those present) and
    top-k errors of the bound `metrics`."""
    keys = [k for k in METRIC_KEYS if k in metrics] if partial else METRIC_KEYS
    return {"d": case.d, "mode": case.mode, "ratio": case.ratio, "seed": case.seed, **fields,
            **{k: metrics[k] for k in keys},
            **{k: v for k, v in metrics.items() if k.startswith("top") and "error" in k}}


def ngram_point(cfg: RunConfig, corpus, case) -> dict:
    """run_point's metrics of a count model: D = the table's nonzero entries, train_seconds = the
    fit."""
    metrics = eval_ngram(corpus, cfg, case.mode)
    return point_metrics(case, metrics, D=metrics["n_entries"], n_groups=0, gamma_B=[],
                         val_loss=None, best_step=0, final_train_loss=None,
                         train_seconds=metrics["fit_seconds"], init_from=cfg.model.init_from)


def step_pair(config, d: int, projector: str, device: str = "cpu"):
    """(model, subspace step, plain LoRA step): one AdamW step each on the same batch (uniform
    allocation, `projector`), the LoRA baseline with the same rank, alpha and targets."""
    case = SimpleNamespace(id=f"step-d{d}-{projector}", d=d, mode="uniform", ratio=0.5, seed=0)
    cfg = run_config(config, case)
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
        _step(sub.loss(x, y), sub_params, sub_opt)

    def lora_step():
        logits = plain(x).logits
        _step(torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()), lora_params,
              plain_opt)

    return sub, sub_step, lora_step


def _step(loss: torch.Tensor, params: list, opt: torch.optim.Optimizer) -> None:
    """backward, clip at 1.0, AdamW step: one training step of step_pair's timed pair."""
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
