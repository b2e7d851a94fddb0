"""Layer scores from weights: AlphaPruning alpha_peak, block-wise significance, weight norms.

    benchlab layer-selection extract-scores --model opt-tiny --output /tmp/opt_tiny_scores.json

alpha_peak per sublayer (AlphaPruning's `net_esd_estimator(fix_fingers="xmin_peak")`):
eigenvalues of W^T W are the squared singular values of W (float32), ascending. For a candidate
xmin = lam_i with n = N - i: alpha = 1 + n / (sum_{j>=i} ln lam_j - n ln lam_i) (the power-law
MLE), KS distance D = max_j |1 - (lam_j / lam_i)^(1 - alpha) - (j - i) / n|; the candidate with the
smallest D wins. Candidates stop at 1.5 x the peak of a 100-bin histogram of log10 eigenvalues.
Upstream (and weightwatcher) also pass a lower bound log10(0.95 x peak), compared with eigenvalues
in linear units; it only bites when 0.95 x peak > 10^lam_min, and we leave it out (DESIGN §3).
"""

import math
from dataclasses import dataclass

import numpy as np

# sublayers per transformer block, in the seed's order
SUBLAYERS = {
    "opt": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
            "fc1", "fc2"),
    "llama": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
              "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
}


def esd(weight) -> np.ndarray:
    """Ascending eigenvalues of W^T W (squared singular values of W in float32), as float64."""
    import torch

    w = torch.as_tensor(weight).detach().float()
    s = torch.linalg.svdvals(w)  # min(out, in) values: the nonzero part of W^T W's spectrum
    return np.sort((s * s).cpu().numpy()).astype(np.float64)


@dataclass(frozen=True)
class PowerLawFit:
    alpha: float
    D: float
    xmin: float


def fit_alpha(evals, *, bins: int = 100, peak_factor: float | None = 1.5) -> PowerLawFit:
    """Power-law tail fit of sorted eigenvalues; `peak_factor=None` tries every xmin (as WW)."""
    lam = np.sort(np.asarray(evals, dtype=np.float64))
    N = lam.size
    if N < 2 or lam[0] <= 0:
        raise ValueError(f"fit_alpha: need >= 2 positive eigenvalues, got {N} (min {lam[0]})")
    logs = np.log(lam)
    suffix = np.cumsum(logs[::-1])[::-1]  # sum_{j>=i} ln lam_j
    last = N - 1  # candidates i = 0 .. N-2
    if peak_factor is not None:
        counts, edges = np.histogram(np.log10(lam), bins=bins)
        peak = 10 ** edges[int(np.argmax(counts))]
        last = min(last, int(np.searchsorted(lam, peak_factor * peak, side="right")))
    alphas, Ds = np.zeros(N - 1), np.ones(N - 1)
    for start in range(0, last, 256):  # blocks of candidates x all eigenvalues
        i = np.arange(start, min(last, start + 256))
        n = (N - i).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            a = 1 + n / (suffix[i] - n * logs[i])
        alphas[i] = a
        ok = np.isfinite(a) & (a > 1)
        j = np.arange(N)
        rel = j[None, :] - i[:, None]  # j - i
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            cdf = 1 - (lam[None, :] / lam[i, None]) ** (1 - a[:, None])
            dev = np.abs(cdf - rel / n[:, None])
        dev[rel < 0] = 0
        D = dev.max(axis=1)
        Ds[i[ok]] = D[ok]
    best = int(np.argmin(Ds))
    return PowerLawFit(float(alphas[best]), float(Ds[best]), float(lam[best]))


@dataclass(frozen=True)
class Significance:
    alphas: np.ndarray  # per layer, after block averaging
    ratios: np.ndarray  # per layer pruning ratio before clamping
    pruning_ratio: np.ndarray  # clamped to [0, 1]
    significance: np.ndarray  # 1 - pruning_ratio


def significance_from_alphas(alphas, num_parameters, layers_per_block: int, sparsity: float,
                             epsilon: float) -> Significance:
    """AlphaPruning's block-wise allocation: average alpha per block, map [min, max] linearly to
    [1 - eps, 1 + eps], scale so the parameter-weighted mean ratio is `sparsity`, clamp to [0, 1];
    significance = 1 - ratio (higher alpha: less trained: pruned more: less significant)."""
    a = np.asarray(alphas, dtype=np.float64)
    n = np.asarray(num_parameters, dtype=np.float64)
    if a.size != n.size or a.size % layers_per_block:
        raise ValueError(f"significance_from_alphas: {a.size} alphas, {n.size} counts, "
                         f"{layers_per_block} layers per block")
    blocks = a.reshape(-1, layers_per_block).mean(axis=1)
    a = np.repeat(blocks, layers_per_block)
    lo, hi = a.min(), a.max()
    t = (a - lo) / (hi - lo) if hi > lo else np.full_like(a, 0.5)
    ratios = t * (2 * epsilon) + (1 - epsilon)
    ratios = ratios * (n.sum() * sparsity / np.sum(n * ratios))
    clamped = np.clip(ratios, 0.0, 1.0)
    return Significance(a, ratios, clamped, 1.0 - clamped)


def blocks_of(model):
    """The decoder blocks of an HF causal LM: the ModuleList as long as num_hidden_layers with
    the most parameters (the first of equals)."""
    import torch

    want = getattr(model.config, "num_hidden_layers", None)
    lists = [mod for _, mod in model.named_modules() if isinstance(mod, torch.nn.ModuleList)
             and len(mod) and (want is None or len(mod) == want)]
    if not lists:
        raise ValueError(f"{type(model).__name__}: no decoder block list found")
    return max(lists, key=lambda mod: sum(p.numel() for p in mod.parameters()))


def sublayers(model) -> list[tuple[str, object]]:
    """(name, 2-d weight [out, in]) of each prunable sublayer, block by block, in seed order."""
    import torch

    out = []
    for b, block in enumerate(blocks_of(model)):
        mods = dict(block.named_modules())
        names = next((v for v in SUBLAYERS.values() if all(x in mods for x in v)), None)
        if names is None:  # any other architecture: its Linear (and GPT-2 Conv1D) modules
            names = tuple(k for k, m in mods.items()
                          if isinstance(m, torch.nn.Linear) or type(m).__name__ == "Conv1D")
        for name in names:
            w = mods[name].weight.detach()
            out.append((f"{b}.{name}", w.T if type(mods[name]).__name__ == "Conv1D" else w))
    return out


def model_scores(model, *, sparsity: float = 0.85, epsilon: float = 0.9,
                 model_name: str = "model") -> dict:
    """The seed's scores JSON (alpha_peak, block_wise, inverse_ratio) for an HF model."""
    from tqdm import tqdm

    layers = sublayers(model)
    n_blocks = len(blocks_of(model))
    per_block = len(layers) // n_blocks
    raw = np.array([fit_alpha(esd(w)).alpha for _, w in tqdm(layers, desc="alpha_peak",
                                                              leave=False)])
    counts = np.array([w.numel() for _, w in layers], dtype=np.float64)
    sig = significance_from_alphas(raw, counts, per_block, sparsity, epsilon)
    out_layers = [{"index": i, "name": name, "num_parameters": int(w.numel()),
                   "significance_score": float(sig.significance[i]),
                   "pruning_ratio": float(sig.pruning_ratio[i]), "weight_shape": list(w.shape)}
                  for i, (name, w) in enumerate(layers)]
    blocks = []
    for b in range(n_blocks):
        sl = slice(b * per_block, (b + 1) * per_block)
        blocks.append({"block_index": b, "start_layer_index": b * per_block,
                       "end_layer_index": (b + 1) * per_block - 1, "num_layers": per_block,
                       "total_parameters": int(counts[sl].sum()),
                       "avg_significance": float(sig.significance[sl].mean()),
                       "avg_pruning_ratio": float(sig.pruning_ratio[sl].mean())})
    return {
        "model_name": model_name, "metric_name": "alpha_peak", "sparsity_ratio": sparsity,
        "epsilon": epsilon, "mapping_type": "block_wise", "significance_method": "inverse_ratio",
        "total_parameters": int(counts.sum()), "num_blocks": n_blocks,
        "num_prunable_layers": len(layers), "layers_per_block": per_block,
        "is_opt_model": getattr(model.config, "model_type", "") == "opt",
        "layers": out_layers, "blocks": blocks,
        "metadata": {"raw_metrics_min": float(raw.min()), "raw_metrics_max": float(raw.max()),
                     "raw_metrics_mean": float(raw.mean()),
                     "pruning_ratios_min": float(sig.pruning_ratio.min()),
                     "pruning_ratios_max": float(sig.pruning_ratio.max()),
                     "significance_scores_min": float(sig.significance.min()),
                     "significance_scores_max": float(sig.significance.max()),
                     "significance_scores_mean": float(sig.significance.mean())},
    }


def model_norms(model, *, model_name: str = "model") -> dict:
    """The seed's norms JSON: elementwise L1, Frobenius and max-abs norm per sublayer."""
    layers = []
    for i, (name, w) in enumerate(sublayers(model)):
        w = w.float()
        layers.append({"index": i, "name": name, "norm_1": float(w.abs().sum()),
                       "norm_2": float(math.sqrt(float((w.double() ** 2).sum()))),
                       "norm_inf": float(w.abs().max()), "num_parameters": int(w.numel())})
    return {"model_name": model_name, "num_layers": len(layers), "layers": layers}
