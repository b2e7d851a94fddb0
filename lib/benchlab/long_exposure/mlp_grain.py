"""MLP sparsity at the grain where it survives: neuron reordering and block size.

    python -c "from benchlab import zoo; from benchlab.long_exposure.mlp_grain import *; \
from benchlab.long_exposure.opcases import corpus_rows; m = zoo.load('opt-tiny'); \
print(grain_study(m, corpus_rows('opt-tiny', 4, 128, 'train'), corpus_rows('opt-tiny', 4, 128)))"

Per token only ~30% of a trained OPT's neurons fire, but a block of 64 neurons is kept for a
sequence when ANY of its neurons fires for ANY token, so the sequence union at block grain keeps
almost everything. Two levers, both exact (the network computes the same function):
  reorder   permute fc1's output rows (and bias) and fc2's input columns so that neurons that fire
            together share blocks: neurons sorted by how often they fire in the sequences of a
            calibration set (descending, ties by index: integer counts, deterministic), so the
            rarely-firing ones fill whole blocks that a sequence can skip
  block     smaller blocks (1, 16, 32) beside the operator's 64 and the artifact's 128
Thresholds are the artifact's: a neuron is active above 0, 1, 3 or 5% of its token's largest
activation (exposer.ExposerConfig.mlp_rel).

    neuron_order(acts, rel) -> LongTensor (F,)        from calibration activations (B, L, F)
    permute_mlp(layer, order)                          in place, on an OPTDecoderLayer
    seq_union(act, rel, block, order=None) -> float    kept blocks / blocks, per-sequence union
    grain_study(model, calib_rows, eval_rows, rels, blocks) -> {metric: value}, names
        mlp_token_t{pct}, mlp_seq_union_t{pct}_b{block}, mlp_seq_union_t{pct}_b{block}_reordered
        (means over layers; the order is fit on calib_rows, judged on eval_rows)
"""

import torch

from . import exposer as ex

RELS = (0.0, 0.01, 0.03, 0.05)
BLOCKS = (1, 16, 32, 64, 128)


def _active(act: torch.Tensor, rel: float) -> torch.Tensor:
    return ex.mlp_active_blocks(act.float(), ex.ExposerConfig(mlp_block=1, mlp_rel=rel))


def neuron_order(acts: torch.Tensor, rel: float) -> torch.Tensor:
    """Neurons by the number of calibration sequences they fire in, most first (stable)."""
    counts = _active(acts, rel).any(1).sum(0)  # (F,) integer counts
    return torch.sort(-counts, stable=True).indices


def permute_mlp(layer, order: torch.Tensor) -> None:
    """Reorder the neurons of one OPT layer's MLP in place (the function is unchanged)."""
    with torch.no_grad():
        layer.fc1.weight.copy_(layer.fc1.weight[order])
        if layer.fc1.bias is not None:
            layer.fc1.bias.copy_(layer.fc1.bias[order])
        layer.fc2.weight.copy_(layer.fc2.weight[:, order])


def seq_union(act: torch.Tensor, rel: float, block: int, order=None) -> float:
    """Kept / all neuron blocks of the per-sequence union at `block` grain."""
    a = _active(act, rel)  # (B, L, F)
    if order is not None:
        a = a[..., order]
    return float(ex.block_sum(a.float(), block, -1).gt(0).any(1).float().mean())


def grain_study(model, calib_rows, eval_rows, rels=RELS, blocks=BLOCKS) -> dict:
    """See the module docstring."""
    calib = ex.run_captured(model, calib_rows)
    held = ex.run_captured(model, eval_rows)
    out: dict = {}
    layers = sorted(held.act)
    for rel in rels:
        tag = f"t{round(100 * rel)}"
        tok = [float(_active(held.act[i], rel).float().mean()) for i in layers]
        out[f"mlp_token_{tag}"] = sum(tok) / len(tok)
        orders = [neuron_order(calib.act[i], rel) for i in layers]
        for b in blocks:
            plain = [seq_union(held.act[i], rel, b) for i in layers]
            out[f"mlp_seq_union_{tag}_b{b}"] = sum(plain) / len(plain)
            if b > 1:
                re = [seq_union(held.act[i], rel, b, o) for i, o in zip(layers, orders,
                                                                         strict=True)]
                out[f"mlp_seq_union_{tag}_b{b}_reordered"] = sum(re) / len(re)
    return out
