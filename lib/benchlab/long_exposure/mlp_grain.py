"""MLP sparsity at the grain where it survives: neuron reordering and block size.

    python -c "from benchlab import zoo; from benchlab.long_exposure.mlp_grain import *; \
from benchlab.long_exposure.opcases import corpus_rows; m = zoo.load('opt-tiny'); \
print(grain_study(m, corpus_rows('opt-tiny', 4, 128, 'train'), corpus_rows('opt-tiny', 4, 128)))"

Per token only ~30% of a trained OPT's neurons fire, but a 64-neuron block is kept for a
sequence when ANY of its neurons fires for ANY token, so the sequence union keeps almost
everything. Two exact levers: reorder (neurons sorted by how many calibration sequences they
fire in, so rarely-firing ones fill whole blocks) and smaller blocks (1, 16, 32 beside 64, 128).
A neuron is active above 0, 1, 3 or 5% of its token's largest activation. grain_study's metrics,
means over layers (order fit on calib_rows, judged on eval_rows): mlp_token_t{pct},
mlp_seq_union_t{pct}_b{block}[_reordered], and mlp_time_study's times.

The time study (the artifact's Fig 9 MLP panel): per layer, on its captured MLP inputs and
eval_rows' union masks, forward + input gradient of the dense MLP vs column-sparse (block 1)
vs block-sparse (`time_blocks`, also reordered), interleaved in rotated rounds. Metrics, each a
list over layers and its mean `<name>_mean`:
    t_mlp_dense, t_mlp_column_t{pct}, t_mlp_block_t{pct}_b{block}[_reordered]  (median s)
    speedup_column_t{pct}, speedup_block_t{pct}_b{block}[_reordered]   (paired dense / sparse)
    speedup_..._lo, speedup_..._hi     (their 95% bootstrap bounds over rounds, from 3 rounds)
    speedup_..._hi_max                 (the highest upper bound over layers: below 1, sparsity
                                        costs time in every layer)
"""

import torch

from benchlab.core.stats import medians, paired_ratio, paired_ratio_ci
from benchlab.core.timing import forward_backward, interleave

from . import exposer, ops_mlp

RELS = (0.0, 0.01, 0.03, 0.05)
BLOCKS = (1, 16, 32, 64, 128)


def _active(act: torch.Tensor, rel: float) -> torch.Tensor:
    return exposer.mlp_active_blocks(act.float(), exposer.ExposerConfig(mlp_block=1, mlp_rel=rel))


def neuron_order(acts: torch.Tensor, rel: float) -> torch.Tensor:
    """Neurons by the number of calibration sequences they fire in, most first (stable)."""
    counts = _active(acts, rel).any(1).sum(0)  # (F,) integer counts
    return torch.sort(-counts, stable=True).indices


def permuted(w1, b1, w2, order: torch.Tensor) -> tuple:
    """MLP weights with neurons in `order`: fc1's rows (and bias) and fc2's columns, so the MLP
    computes the same function."""
    return w1[order], b1[order] if b1 is not None else None, w2[:, order].contiguous()


def permute_mlp(layer, order: torch.Tensor) -> None:
    """Reorder the neurons of one OPT layer's MLP in place (the function is unchanged)."""
    fc1, fc2 = layer.fc1, layer.fc2
    with torch.no_grad():
        for p, v in zip((fc1.weight, fc1.bias, fc2.weight),
                        permuted(fc1.weight, fc1.bias, fc2.weight, order), strict=True):
            if p is not None:
                p.copy_(v)


def seq_keep(act: torch.Tensor, rel: float, block: int, order=None) -> torch.Tensor:
    """(B, F // block) bool: the blocks (of neurons in `order`) active for any token of each
    sequence of act (B, L, F)."""
    a = _active(act, rel)  # (B, L, F)
    if order is not None:
        a = a[..., order]
    return exposer.block_sum(a.float(), block, -1).gt(0).any(1)


def seq_union(act: torch.Tensor, rel: float, block: int, order=None) -> float:
    """Kept / all neuron blocks of the per-sequence union at `block` grain."""
    return float(seq_keep(act, rel, block, order).float().mean())


def _tag(rel: float) -> str:
    return f"t{round(100 * rel)}"


def layer_mlp_fns(layer, x, act, rels, blocks, orders=None, seed: int = 0) -> dict:
    """{"dense" | "column_t{pct}" | "block_t{pct}_b{block}[_reordered]": fn()}: forward + input
    gradient of one OPT layer's MLP on x (B, L, d) with act's (B, L, F) per-sequence union
    masks; `orders` (one per rel) adds the reordered blocks."""
    w1, b1, w2, b2 = (None if t is None else t.detach().to(x.device)
                      for t in (layer.fc1.weight, layer.fc1.bias, layer.fc2.weight,
                                layer.fc2.bias))
    x = x.detach().requires_grad_(True)
    gy = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)).to(x)

    def sparse(keep, block, w=(w1, b1, w2)):
        a, b, c = w
        return forward_backward(
            lambda: ops_mlp.block_sparse_mlp(x, a, b, c, b2, keep, block), x, gy)

    fns = {"dense": forward_backward(lambda: ops_mlp.dense_mlp(x, w1, b1, w2, b2), x, gy)}
    for j, rel in enumerate(rels):
        fns[f"column_{_tag(rel)}"] = sparse(seq_keep(act, rel, 1).to(x.device), 1)
        if orders is not None:  # the permuted layer (permute_mlp): the same function
            w = permuted(w1, b1, w2, orders[j].to(x.device))
        for b in blocks:
            fns[f"block_{_tag(rel)}_b{b}"] = sparse(seq_keep(act, rel, b).to(x.device), b)
            if orders is not None:
                fns[f"block_{_tag(rel)}_b{b}_reordered"] = sparse(
                    seq_keep(act, rel, b, orders[j]).to(x.device), b, w)
    return fns


def mlp_time_study(model, held, rels, blocks, orders=None, *, rounds: int, warmup: int = 1,
                   device: str = "cpu") -> dict:
    """Per-layer MLP operator times on captured inputs `held` (module docstring);
    `orders[layer][rel index]` neuron orders for the reordered blocks."""
    from .predictors import bar

    per: dict = {}
    layers = exposer.decoder_layers(model)
    for n, layer in bar(enumerate(layers), "MLP operator times per layer", total=len(layers),
                        unit="layer"):
        fns = layer_mlp_fns(layer, held.mlp_in[n].to(device), held.act[n], rels,
                            blocks, orders[n] if orders is not None else None)
        ts = interleave(fns, device, warmup=warmup, rounds=rounds)
        for k, t in medians(ts).items():
            per.setdefault(f"t_mlp_{k}", []).append(t)
            if k != "dense":
                per.setdefault(f"speedup_{k}", []).append(paired_ratio(ts["dense"], ts[k]))
                if rounds >= 3:
                    lo, hi = paired_ratio_ci(ts["dense"], ts[k])
                    per.setdefault(f"speedup_{k}_lo", []).append(lo)
                    per.setdefault(f"speedup_{k}_hi", []).append(hi)
    highest = {f"{k}_max": max(v) for k, v in per.items() if k.endswith("_hi")}
    return {**per, **{f"{k}_mean": sum(v) / len(v) for k, v in per.items()}, **highest}


def grain_study(model, calib_rows, eval_rows, rels=RELS, blocks=BLOCKS, time_blocks=(), *,
                rounds: int = 0, warmup: int = 1, device: str = "cpu") -> dict:
    """See the module docstring (time_blocks empty: no time study; it times `rounds` rounds,
    OpsConfig.grain_time_rounds in the measure)."""
    calib = exposer.run_captured(model, calib_rows)
    held = exposer.run_captured(model, eval_rows)
    out: dict = {}
    layers = sorted(held.act)
    orders = {i: [neuron_order(calib.act[i], rel) for rel in rels] for i in layers}
    for j, rel in enumerate(rels):
        tag = _tag(rel)
        tok = [float(_active(held.act[i], rel).float().mean()) for i in layers]
        out[f"mlp_token_{tag}"] = sum(tok) / len(tok)
        for b in blocks:
            plain = [seq_union(held.act[i], rel, b) for i in layers]
            out[f"mlp_seq_union_{tag}_b{b}"] = sum(plain) / len(plain)
            if b > 1:
                re = [seq_union(held.act[i], rel, b, orders[i][j]) for i in layers]
                out[f"mlp_seq_union_{tag}_b{b}_reordered"] = sum(re) / len(re)
    if time_blocks:
        out.update(mlp_time_study(model, held, rels, time_blocks, [orders[i] for i in layers],
                                  rounds=rounds, warmup=warmup, device=device))
    return out
