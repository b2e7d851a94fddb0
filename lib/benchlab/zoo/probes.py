"""What training changes, measured: validation loss, router entropy (MoE), ReLU sparsity (OPT).

    python -c "from benchlab import zoo; from benchlab.zoo import probes; \
print(probes.summary(zoo.trained('opt-tiny')))"
"""

import math

import numpy as np
import torch

from .batches import fixed_batches
from .tokenize import corpus_tokens


@torch.no_grad()
def val_loss(model, batches: torch.Tensor) -> float:
    """Mean next-token cross-entropy (nats) over token batches of shape (n, B, T + 1)."""
    model.eval()
    device = next(model.parameters()).device
    losses = [model(input_ids=b.to(device), labels=b.to(device)).loss.item() for b in batches]
    return float(np.mean(losses))


@torch.no_grad()
def router_entropy(model, ids: torch.Tensor) -> float:
    """Mean entropy (nats) of the router softmax over all experts, tokens and MoE layers.

    A uniform router over E experts has entropy ln E (ln 64 = 4.16)."""
    out = model(input_ids=ids, output_router_logits=True)
    ents = []
    for logits in out.router_logits:  # per layer: (B*T, E)
        logp = torch.log_softmax(logits.float(), dim=-1)
        ents.append(-(logp.exp() * logp).sum(-1).mean().item())
    return float(np.mean(ents))


@torch.no_grad()
def relu_sparsity(model, ids: torch.Tensor) -> float:
    """Fraction of exactly-zero ReLU outputs (inputs of every fc2) in an OPT model."""
    zeros, total = [0], [0]

    def hook(_module, args):
        act = args[0]  # (B*T, ffn_dim) after ReLU
        zeros[0] += int((act <= 0).sum())
        total[0] += act.numel()

    hooks = [module.register_forward_pre_hook(hook) for name, module in model.named_modules()
             if name.endswith("fc2")]
    try:
        model(input_ids=ids)
    finally:
        for h in hooks:
            h.remove()
    if not total[0]:
        raise ValueError("relu_sparsity: the model has no fc2 layers (not an OPT model)")
    return zeros[0] / total[0]


def summary(model, *, n_batches: int = 2, batch_size: int = 8, seq_len: int = 128) -> dict:
    """Validation loss (+ router entropy / ReLU sparsity where the model has them)."""
    batches = fixed_batches(corpus_tokens("val"), n_batches, batch_size, seq_len, seed=1234)
    batches = batches.to(next(model.parameters()).device)
    out = {"val_loss": val_loss(model, batches),
           "uniform_loss": math.log(model.config.vocab_size)}
    family = model.config.model_type
    if family == "olmoe":
        out["router_entropy"] = router_entropy(model, batches[0, :, :-1])
    if family == "opt" and model.config.activation_function == "relu":
        out["relu_sparsity"] = relu_sparsity(model, batches[0, :, :-1])
    return out
