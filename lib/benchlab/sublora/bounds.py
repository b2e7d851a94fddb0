"""Document-level PAC-Bayes bounds on bits per token for a compressed (quantized + coded) model.

Following DESIGN.md section 3 (SubLoRA):
1. `compress(quantized, side=gates)` runs the arithmetic coder (coding.py), decodes the message
   back to check it, and returns its length L: code + counts table + float16 codebook + float32
   side values (the learned gate logits, so they are paid for). L' = L + 2 log2 L is prefix-free;
   KL (nats) = (L' + extra bits) ln 2.
2. s documents sampled uniformly (independently of training) from the m training documents;
   `DocumentRisks` turns `target_stats` (probability and rank of each target) into
     R_s(a) = mean over documents of (mean over the document's tokens of -log2 p_a(token))
   with p_a = (1 - a) p + a / V for each a of the grid, and top-k error rates averaged the same
   way (document level: a document counts once, whatever its length).
3. `bounds_metrics` gives, at the best a of the grid, with r = s / (s + m),
     bound(a) = R_s(a) + Delta(a) [ sqrt((KL - ln(r eps)) / (2m)) + sqrt(-ln((1-r) eps) / (2s)) ]
   where Delta(a) = log2(1 + (1-a) V / a) is the per-token loss range. The grid is paid for: KL
   includes log2|grid| bits, and (`grid_in_sample_term=True`) the sampling term uses eps/|grid|,
   as a is picked on the same documents; upstream paid only in the KL (False reproduces it).
   Top-k error bounds: 0/1 loss (range 1), no smoothing, no grid bits; each k its own statement.
4. `save_bounds_metrics` writes every input; `recompute_bound(metrics)` rebuilds `bound_value`.

    python -c "from benchlab.sublora.bounds import subsampling_bound, loss_range; \
print(subsampling_bound(4.0, 2000.0, m=300000, s=10000, delta=loss_range(0.1, 4096)))"
"""

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.errors import BenchlabError, fail, read_json
from ..core.provenance import to_jsonable
from ..core.store import atomic_path
from . import coding
from .quantize import Quantized

DEFAULT_ALPHAS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
DEFAULT_TOPK = (1, 5, 10)
EPS = 0.05
JSON_NAME, PT_NAME = "bounds_metrics.json", "bounds_metrics.pt"


# -- the message ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class MessageLength:
    """Bits of the compressed model's message (see coding.py for the layout)."""

    code_bits: int      # arithmetic code of the d symbols
    counts_bits: int    # static frequency table: levels counts of W = d.bit_length() bits each
    codebook_bits: int  # levels float16 centroids
    side_bits: int      # float32 side values (learned gate logits), 0 if none
    d: int
    levels: int
    n_side: int

    @property
    def bits(self) -> int:
        """L: the whole message."""
        return self.code_bits + self.counts_bits + self.codebook_bits + self.side_bits

    @property
    def prefix_free_bits(self) -> float:
        return prefix_free_bits(self.bits)


def compress(quantized: Quantized, side=(), *, verify: bool = True) -> MessageLength:
    """Encode symbols, codebook and side values (e.g. the learned gates) into one message; with
    `verify`, decode it back and check it (this keeps the reported length honest)."""
    if isinstance(side, torch.Tensor):
        side = side.detach().cpu().numpy()
    side = np.asarray(side, dtype=np.float32).reshape(-1)
    bits = coding.encode_message(quantized.symbols, quantized.codebook, side)
    d, levels = int(quantized.symbols.size), quantized.levels
    head = coding.header_bits(d, levels, side.size)
    if verify:
        symbols, codebook, side_back = coding.decode_message(bits, d, levels, side.size)
        if not (np.array_equal(symbols, quantized.symbols)
                and np.array_equal(codebook, quantized.codebook.astype(np.float16)
                                   .astype(np.float32))
                and np.array_equal(side_back, side)):
            raise AssertionError("arithmetic message did not decode to its input")
    return MessageLength(code_bits=int(bits.size) - sum(head.values()), d=d, levels=levels,
                         n_side=int(side.size), **head)


def prefix_free_bits(message_bits: float) -> float:
    """L' = L + 2 log2 L: a prefix-free length for a message of L bits (0 for an empty one)."""
    return float(message_bits + 2 * math.log2(message_bits)) if message_bits > 0 else 0.0


def kl_nats(prefix_bits: float, extra_bits: float) -> float:
    """KL(Q || P) in nats of a point-mass posterior under the universal prior: (L' + extra) ln 2."""
    return float((prefix_bits + extra_bits) * math.log(2))


# -- evaluating the model on documents -----------------------------------------------------------

@torch.no_grad()
def target_stats(logits: torch.Tensor, targets: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """logits (T, V) of ONE document, targets (T,) -> (probs (T,) float64, ranks (T,) int64);
    rank = number of tokens with a strictly larger logit (0: the argmax; ties favour the target)."""
    logits = logits.detach().float()
    logp = torch.log_softmax(logits, dim=-1)                          # (T, V)
    tgt = targets.reshape(-1, 1).to(logits.device)
    target_logit = logits.gather(1, tgt)                              # (T, 1)
    ranks = (logits > target_logit).sum(dim=1)                        # (T,)
    probs = logp.gather(1, tgt).squeeze(1).double().exp()
    return probs.cpu().numpy(), ranks.cpu().numpy().astype(np.int64)


class DocumentRisks:
    """Running document-level averages; add one document at a time (memory O(|grid|))."""

    def __init__(self, vocab_size: int, alphas=DEFAULT_ALPHAS, topk=DEFAULT_TOPK):
        self.vocab_size = int(vocab_size)
        self.alphas = tuple(float(a) for a in alphas)
        self.topk = tuple(int(k) for k in topk)
        self._bpd = np.zeros(len(self.alphas))
        self._err = np.zeros(len(self.topk))
        self._raw = 0.0
        self.n_docs = 0
        self.n_tokens = 0

    def add(self, probs, ranks=None) -> None:
        """One document: its target probabilities (T,) and, for top-k errors, ranks (T,)."""
        p = np.asarray(probs, dtype=np.float64).reshape(-1)
        if p.size == 0:
            raise ValueError("a document needs at least one target token")
        for i, a in enumerate(self.alphas):
            self._bpd[i] += np.mean(-np.log2((1 - a) * p + a / self.vocab_size))  # bits
        self._raw += float(-np.log2(np.maximum(p, np.finfo(float).tiny)).mean())
        if self.topk:
            if ranks is None:
                raise ValueError("ranks are needed for top-k errors (or pass topk=())")
            r = np.asarray(ranks).reshape(-1)
            self._err += [np.mean(r >= k) for k in self.topk]
        self.n_docs += 1
        self.n_tokens += p.size

    def risks(self) -> np.ndarray:
        """R_s(a) per alpha (bits per token, document-level average)."""
        return self._bpd / max(self.n_docs, 1)

    def raw_bpd(self) -> float:
        """Unsmoothed document-level bits per token (p floored at the smallest float)."""
        return self._raw / max(self.n_docs, 1)

    def topk_errors(self) -> dict[int, float]:
        n = max(self.n_docs, 1)
        return {k: float(e) / n for k, e in zip(self.topk, self._err, strict=True)}


# -- the bound -----------------------------------------------------------------------------------

def loss_range(alpha: float, vocab_size: int) -> float:
    """Delta(a) = log2(1 + (1 - a) V / a): max minus min of -log2((1 - a) p + a / V)."""
    return float(math.log2(1 + (1 - alpha) * vocab_size / alpha))


def subsampling_bound(risk: float, kl: float, *, m: int, s: int, delta: float = 1.0,
                      eps: float = EPS, union: int = 1) -> float:
    """risk + delta [sqrt((kl - ln(r eps)) / 2m) + sqrt(-ln((1-r) eps / union) / 2s)], r = s/(s+m);
    `union` > 1 spends eps/union on the sampling term (a choice made on the sampled documents)."""
    if m <= 0 or s <= 0:
        raise ValueError(f"m and s must be positive, got m={m}, s={s}")
    if not 0 < eps < 1:
        raise ValueError(f"eps must lie in (0, 1), got {eps}")
    if kl < 0:
        raise ValueError(f"KL must be non-negative, got {kl}")
    r = s / (s + m)
    complexity = (math.sqrt((kl - math.log(r * eps)) / (2 * m))
                  + math.sqrt(-math.log((1 - r) * eps / union) / (2 * s)))
    return float(risk + delta * complexity)


def bpd_bounds(risks, alphas, *, kl: float, vocab_size: int, m: int, s: int, eps: float = EPS,
               grid_in_sample_term: bool = True) -> np.ndarray:
    """The bound for every a of the grid (kl must already include the grid's bits)."""
    union = len(alphas) if grid_in_sample_term else 1
    return np.array([subsampling_bound(float(r), kl, m=m, s=s, delta=loss_range(a, vocab_size),
                                       eps=eps, union=union)
                     for r, a in zip(risks, alphas, strict=True)])


def bounds_metrics(message: MessageLength, risks, *, alphas=DEFAULT_ALPHAS, vocab_size: int,
                   m: int, s: int, extra_bits: float, eps: float = EPS, topk_errors=None,
                   raw_bpd: float | None = None, grid_in_sample_term: bool = True,
                   inputs: dict | None = None) -> dict:
    """Everything bounds_metrics.json holds: results and every input of the formula. risks: R_s
    per alpha; m, s: training and sampled documents; extra_bits: hyperparameter bits (the grid's
    log2|grid| are added here); topk_errors: {k: rate} or None; inputs: stored as given."""
    risks = np.asarray(risks, dtype=np.float64)
    alphas = tuple(float(a) for a in alphas)
    if risks.shape != (len(alphas),):
        raise ValueError(f"risks has shape {risks.shape}, expected ({len(alphas)},) for the grid")
    grid_bits = math.log2(len(alphas))
    prefix = prefix_free_bits(message.bits)
    kl = kl_nats(prefix, extra_bits + grid_bits)
    per_alpha = bpd_bounds(risks, alphas, kl=kl, vocab_size=vocab_size, m=m, s=s, eps=eps,
                           grid_in_sample_term=grid_in_sample_term)
    best = int(np.argmin(per_alpha))
    out = {
        "bound_value": float(per_alpha[best]),
        "empirical_bpd": float(risks[best]),
        "kl_divergence": kl,
        "compressed_size_bits": int(message.bits),
        "best_alpha": alphas[best],
        "delta_best": loss_range(alphas[best], vocab_size),
        "random_guess_bpd": math.log2(vocab_size),
        "non_vacuous": bool(per_alpha[best] < math.log2(vocab_size)),
        "raw_bpd": None if raw_bpd is None else float(raw_bpd),
        "bound_per_alpha": per_alpha.tolist(),
        # inputs of the formula
        "risks_per_alpha": risks.tolist(), "alphas": list(alphas), "vocab_size": int(vocab_size),
        "m": int(m), "s": int(s), "eps": float(eps), "extra_bits": float(extra_bits),
        "alpha_grid_bits": grid_bits, "grid_in_sample_term": bool(grid_in_sample_term),
        "message_bits": int(message.bits), "prefix_message_bits": prefix,
        **asdict(message),
    }
    if topk_errors:
        kl_topk = kl_nats(prefix, extra_bits)
        out["kl_divergence_topk"] = kl_topk
        for k, err in sorted(topk_errors.items()):
            out[f"top{k}_error"] = float(err)
            out[f"top{k}_error_bound"] = subsampling_bound(float(err), kl_topk, m=m, s=s, eps=eps)
    out["inputs"] = dict(inputs or {})
    return out


def recompute_bound(metrics: dict) -> float:
    """bound_value from the saved inputs only (message bits, extra bits, grid, risks, m, s, eps)."""
    alphas = [float(a) for a in metrics["alphas"]]
    prefix = prefix_free_bits(metrics["message_bits"])
    kl = kl_nats(prefix, metrics["extra_bits"] + math.log2(len(alphas)))
    bounds = bpd_bounds(metrics["risks_per_alpha"], alphas, kl=kl,
                        vocab_size=int(metrics["vocab_size"]), m=int(metrics["m"]),
                        s=int(metrics["s"]), eps=float(metrics["eps"]),
                        grid_in_sample_term=bool(metrics["grid_in_sample_term"]))
    return float(bounds.min())


# -- files ---------------------------------------------------------------------------------------

REQUIRED = ("bound_value", "empirical_bpd", "kl_divergence", "compressed_size_bits", "alphas",
            "risks_per_alpha", "vocab_size", "m", "s", "eps", "extra_bits", "message_bits",
            "grid_in_sample_term")


def save_bounds_metrics(metrics: dict, outdir) -> tuple[Path, Path]:
    """Write bounds_metrics.json and .pt (plain Python types, loadable weights_only=True); never
    overwrites (BenchlabError)."""
    outdir = Path(outdir)
    paths = outdir / JSON_NAME, outdir / PT_NAME
    for p in paths:
        if p.exists():
            raise fail(str(p), "bounds_metrics", "already exists; results are never overwritten")
    metrics = to_jsonable(metrics)  # plain types only: numpy scalars would break weights_only
    with atomic_path(paths[0]) as tmp:
        tmp.write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")
    torch.save(metrics, paths[1])
    return paths


def load_bounds_metrics(path) -> dict:
    """Read bounds_metrics.json or .pt (torch.load weights_only=True); check required fields."""
    path = Path(path)
    if not path.exists():
        raise BenchlabError(f"{path}: no such file")
    if path.suffix == ".pt":
        try:
            metrics = torch.load(path, weights_only=True)
        except Exception as e:  # any unpickling failure is bad input here
            raise fail(str(path), "bounds_metrics",
                       f"not a weights-only torch file ({e})") from None
    else:
        metrics = read_json(path, "bounds_metrics")
    if not isinstance(metrics, dict):
        raise fail(str(path), "bounds_metrics", "expected a JSON object")
    for field in REQUIRED:
        if field not in metrics:
            raise fail(str(path), field, "missing")
    return metrics
