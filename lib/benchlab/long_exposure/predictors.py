"""Sparsity predictors: which attention blocks and MLP neuron blocks a sequence will need.

    python -c "from benchlab import zoo; import torch; from benchlab.long_exposure.predictors \
import *; m = zoo.trained('opt-tiny'); rows = torch.randint(2, 4096, (12, 256)); \
p = train_predictors(m, rows[:8]); print(p.evaluate(m, rows[8:]))"

Attention, per layer and head: the normalized input h (B, L, C) mean-pooled over windows of
pool_size(L) ~ sqrt(L) tokens, low-rank queries and keys (rank r), scores sigmoid(q k^T / sqrt(r))
on the grid of cells, trained with BCE against the pooled true map (exposer.pooled_block_mass) on
causal cells (not MSE: its gradient vanishes on saturated cells, and low-mass cells the target
still needs ended at exactly 0). Kept: cells above the layer's threshold, and the diagonal.
MLP, per layer: linear + sigmoid on the fc1 input per neuron block, BCE against per-token block
activity; a sequence's mask is the union over its tokens.
Thresholds per layer on the last `val_fraction` of the training rows: of those with recall >=
`recall_target` on what the operators run (attention cells per (sequence, head), the MLP's
sequence union), the one with the fewest false positives. `evaluate` (per layer, held-out rows):
    attn_recall, attn_precision      kept-by-mass causal off-diagonal cells vs predicted cells
    attn_density_true/_pred          kept / causal cells (diagonal included)
    mlp_recall, mlp_precision        per token and block
    mlp_seq_recall, mlp_seq_precision   per sequence (the union the operator uses)
    mlp_density_true/_pred           per-sequence union density

`train_predictors` returns `Predictors`, a mask source of patch.py. Cells outside the documents
are never kept (nor scored in the loss, thresholds or recall): the predictor only has to find
the sparsity inside documents.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import exposer
from .documents import block_mask
from .ops_attn import BLOCK
from .peft_methods import parts


@dataclass(frozen=True)
class PredictorConfig:
    mass: float = 0.95  # attention mass the true keep covers
    mlp_rel: float = 0.05  # exposer thresholds of MLP activity
    mlp_min_active: int = 1
    rank: int = 16  # low rank per head of the attention predictor
    steps: int = 300  # full-batch Adam steps per predictor
    lr: float = 1e-2
    weight_decay: float = 1e-4
    recall_target: float = 0.97  # on the validation split (held-out goal: 0.9)
    val_fraction: float = 0.25
    chunk: int = 4  # rows per captured forward
    max_mlp_tokens: int = 65536  # MLP training tokens kept per layer
    seed: int = 0


def pool_size(L: int, block: int = BLOCK) -> int:
    """Sequence downsampling window: about sqrt(L), a multiple of `block`."""
    return block * max(1, round(math.sqrt(L) / block))


def pool_tokens(h: torch.Tensor, p: int) -> torch.Tensor:
    """(B, L, C) -> (B, ceil(L / p), C): mean over windows of p tokens (last one partial)."""
    B, L, C = h.shape
    n = -(-L // p)
    s = exposer.block_sum(h, p, dim=1)
    cnt = exposer.block_sum(torch.ones(L, device=h.device), p, 0).clamp_min(1)
    return s / cnt[None, :n, None]


class AttnPredictor(nn.Module):
    """Low-rank per-head query/key projections of pooled hidden states."""

    def __init__(self, d: int, heads: int, rank: int):
        super().__init__()
        self.heads, self.rank = heads, rank
        self.wq = nn.Linear(d, heads * rank)
        self.wk = nn.Linear(d, heads * rank)

    def logits(self, hp: torch.Tensor) -> torch.Tensor:
        """hp (B, n, C) pooled -> q k^T / sqrt(r), (B, H, n, n)."""
        B, n, _ = hp.shape
        q = self.wq(hp).view(B, n, self.heads, self.rank).transpose(1, 2)  # (B, H, n, r)
        k = self.wk(hp).view(B, n, self.heads, self.rank).transpose(1, 2)
        return q @ k.transpose(-1, -2) / math.sqrt(self.rank)

    def forward(self, hp: torch.Tensor) -> torch.Tensor:
        """hp (B, n, C) pooled -> scores in (0, 1), (B, H, n, n)."""
        return torch.sigmoid(self.logits(hp))


def _causal_cells(n: int, device=None) -> torch.Tensor:
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


def _offdiag_cells(n: int, device=None) -> torch.Tensor:
    return torch.ones(n, n, dtype=torch.bool, device=device).tril(-1)


def _threshold(scores: torch.Tensor, labels: torch.Tensor, target: float) -> float:
    """A threshold t whose recall of (scores > t) on `labels` is >= target, with the fewest
    false positives; among those, the lowest (the most recall for the same precision)."""
    pos, neg = scores[labels].float(), scores[~labels].float()
    if pos.numel() == 0:
        return 0.5
    # positives we may miss: the most k with (n - k) / n >= target; the 1e-9 absorbs the rounding
    # of 1 - target (1 - 0.8 is 0.19999999999999996, so 5 positives would allow none to be missed)
    k = min(int(math.floor((1.0 - target) * pos.numel() + 1e-9)), pos.numel() - 1)
    hi = float(pos.sort().values[k]) - 1e-6  # the highest t that reaches the target
    below = neg[neg <= hi]
    return float(below.max()) if below.numel() else 0.0


@dataclass
class LayerData:
    pooled_h: torch.Tensor  # (N, n, C)
    attn_target: torch.Tensor  # (N, H, n, n) pooled true map
    mlp_x: torch.Tensor  # (T, C) sampled tokens
    mlp_y: torch.Tensor  # (T, nblk) bool block activity
    mlp_seq: torch.Tensor  # (N, nblk) true per-sequence union
    cells: torch.Tensor  # (N, n, n) bool causal cells inside documents (the only ones scored;
    # documents.block_mask at the pool size: a cell holds a same-document causal pair)


def bar(iterable, desc: str, delay: float = 1.0, **kw):
    """A tqdm bar over `iterable` that appears only once its loop has run `delay` seconds."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False, delay=delay, **kw)


def collect(model, rows: torch.Tensor, cfg: PredictorConfig, mlp_block: int, *,
            subsample: bool = True, desc: str = "predictor calibration") -> list[LayerData]:
    """Predictor inputs and targets of every layer, from chunked captured forwards."""
    ecfg = exposer.ExposerConfig(mass=cfg.mass, mlp_block=mlp_block, mlp_rel=cfg.mlp_rel,
                                 mlp_min_active=cfg.mlp_min_active)
    L = rows.shape[1]
    p = pool_size(L)
    parts: dict[int, list] = {}
    chunks = range(0, rows.shape[0], cfg.chunk)
    for s in bar(chunks, f"{desc}: captured forwards of {rows.shape[0]} rows x {L}",
                      unit="chunk"):
        cap = exposer.run_captured(model, rows[s:s + cfg.chunk])
        for i in sorted(cap.q):
            A = exposer.attention_probs(cap.q[i], cap.k[i], docs=cap.docs.ids)
            tgt = exposer.pooled_block_mass(A, p)
            y = exposer.mlp_active_blocks(cap.act[i].float(), ecfg)  # (B, L, nblk)
            parts.setdefault(i, []).append((pool_tokens(cap.attn_in[i].float(), p), tgt,
                                            cap.mlp_in[i].float().flatten(0, 1),
                                            y.flatten(0, 1), y.any(1),
                                            block_mask(cap.docs.ids, p)))
        del cap
    gen = torch.Generator().manual_seed(cfg.seed)
    out = []
    for i in sorted(parts):
        cols = list(zip(*parts[i], strict=True))
        x, y = torch.cat(cols[2]), torch.cat(cols[3])
        if subsample and x.shape[0] > cfg.max_mlp_tokens:
            sel = torch.randperm(x.shape[0], generator=gen)[:cfg.max_mlp_tokens]
            x, y = x[sel], y[sel]
        out.append(LayerData(torch.cat(cols[0]), torch.cat(cols[1]), x, y, torch.cat(cols[4]),
                             torch.cat(cols[5])))
    return out


def _fit(module: nn.Module, loss_fn, cfg: PredictorConfig, desc: str = "predictor") -> list[float]:
    opt = torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    losses = []
    for _ in bar(range(cfg.steps), f"train {desc} ({cfg.steps} full-batch steps)",
                      unit="step"):
        loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def train_attn(data: LayerData, heads: int, cfg: PredictorConfig, desc: str = "attention"
               ) -> tuple[AttnPredictor, list]:
    """BCE on causal cells between sigmoid(q k^T) and the pooled true map (soft targets)."""
    pred = AttnPredictor(data.pooled_h.shape[-1], heads, cfg.rank)
    w = data.cells[:, None].float().expand_as(data.attn_target)  # document cells only

    def loss_fn():
        z = pred.logits(data.pooled_h)
        return F.binary_cross_entropy_with_logits(z, data.attn_target, w, reduction="sum") / w.sum()

    return pred, _fit(pred, loss_fn, cfg, desc)


def train_mlp(data: LayerData, cfg: PredictorConfig, desc: str = "MLP"
              ) -> tuple[nn.Linear, list]:
    """BCE of sigmoid(linear(x)) against per-token block activity."""
    pred = nn.Linear(data.mlp_x.shape[-1], data.mlp_y.shape[-1])
    y = data.mlp_y.float()
    return pred, _fit(pred, lambda: F.binary_cross_entropy_with_logits(pred(data.mlp_x), y), cfg,
                      desc)


class Predictors:
    """Trained per-layer predictors with their thresholds; a mask source for patch.py."""

    def __init__(self, attn: list, mlp: list, attn_thr: list, mlp_thr: list, cfg, mlp_block):
        self.attn_pred, self.mlp_pred = attn, mlp
        self.attn_thr, self.mlp_thr = attn_thr, mlp_thr
        self.cfg, self.mlp_block = cfg, mlp_block
        self.losses: dict = {}

    def to(self, device) -> "Predictors":
        """The per-layer predictor modules moved to `device` in place (thresholds are floats)."""
        for module in (*self.attn_pred, *self.mlp_pred):
            module.to(device)
        return self

    # -- scores -----------------------------------------------------------------------------
    @torch.no_grad()
    def attn_scores(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """(B, L, C) -> (B, H, n, n) cell scores (pool size pool_size(L))."""
        return self.attn_pred[i](pool_tokens(h.float(), pool_size(h.shape[1])))

    @torch.no_grad()
    def mlp_scores(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """(B, L, C) -> (B, L, nblk) per-token block probabilities."""
        return torch.sigmoid(self.mlp_pred[i](h.float()))

    # -- the mask source of patch.py --------------------------------------------------------
    def attn(self, i: int, h: torch.Tensor, docs=None) -> torch.Tensor:
        """Kept blocks (B, H, nb, nb) of layer i, inside `docs` (None: one document per row)."""
        L = h.shape[1]
        p = pool_size(L)
        s = self.attn_scores(i, h)
        eye = torch.eye(s.shape[-1], dtype=torch.bool, device=s.device)
        cells = ((s > self.attn_thr[i]) | eye) & _causal_cells(s.shape[-1], s.device)
        r = p // BLOCK
        nb = -(-L // BLOCK)
        blocks = cells.repeat_interleave(r, -1).repeat_interleave(r, -2)[..., :nb, :nb]
        eye = torch.eye(nb, dtype=torch.bool, device=h.device)
        blocks = (blocks | eye) & torch.ones(nb, nb, dtype=torch.bool, device=h.device).tril()
        return blocks if docs is None else blocks & docs.blocks(BLOCK)[:, None]

    def mlp(self, i: int, h: torch.Tensor, docs=None) -> torch.Tensor:
        """Kept neuron blocks (B, F / mlp_block): union over the sequence's tokens."""
        return (self.mlp_scores(i, h) > self.mlp_thr[i]).any(1)

    # -- judged on held-out rows ------------------------------------------------------------
    def evaluate(self, model, rows: torch.Tensor) -> dict:
        """Recall / precision / densities per layer on `rows` (module docstring names)."""
        data = collect(model, rows, self.cfg, self.mlp_block, subsample=False,
                       desc="predictor evaluation")
        out: dict = {}
        for i, d in enumerate(data):
            n = d.pooled_h.shape[1]
            with torch.no_grad():
                s = self.attn_pred[i](d.pooled_h)
            off, causal = _offdiag_cells(n) & d.cells[:, None], d.cells[:, None]
            truth = exposer.keep_by_mass(d.attn_target, self.cfg.mass) & causal
            pred = ((s > self.attn_thr[i]) | torch.eye(n, dtype=torch.bool)) & causal
            n_causal = _causal_cells(n).sum() * truth[..., 0, 0].numel()
            tok = self.mlp_scores(i, d.mlp_x[None])[0] > self.mlp_thr[i]  # (T, nblk)
            seq_pred = tok.view(rows.shape[0], rows.shape[1], -1).any(1)
            layer = dict(zip(("attn_recall", "attn_precision"),
                             _recall_precision(pred & off, truth & off), strict=True))
            layer.update(attn_density_true=float(truth.sum() / n_causal),
                         attn_density_pred=float(pred.sum() / n_causal))
            layer.update(zip(("mlp_recall", "mlp_precision"), _recall_precision(tok, d.mlp_y),
                             strict=True))
            layer.update(zip(("mlp_seq_recall", "mlp_seq_precision"),
                             _recall_precision(seq_pred, d.mlp_seq), strict=True))
            layer.update(mlp_density_true=float(d.mlp_seq.float().mean()),
                         mlp_density_pred=float(seq_pred.float().mean()))
            for k, v in layer.items():
                out.setdefault(k, []).append(v)
        return out


def _recall_precision(pred: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
    tp = float((pred & truth).sum())
    npos, npred = float(truth.sum()), float(pred.sum())
    return (tp / npos if npos else 1.0), (tp / npred if npred else 1.0)


def train_predictors(model, rows: torch.Tensor, *, mlp_block: int = 64,
                     cfg: PredictorConfig = PredictorConfig(), progress: bool = False
                     ) -> Predictors:
    """Train every layer's predictors on `rows` (N, L) token ids (module docstring)."""
    n_val = max(1, round(cfg.val_fraction * rows.shape[0])) if rows.shape[0] > 1 else 0
    train_rows, val_rows = rows[:rows.shape[0] - n_val], rows[rows.shape[0] - n_val:]
    heads = [parts(layer).heads for layer in exposer.decoder_layers(model)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        data = collect(model, train_rows, cfg, mlp_block)
        attn, mlp, losses = [], [], {}
        for i in bar(range(len(data)), "predictors", unit="layer",
                          delay=0 if progress else 1.0):
            a, la = train_attn(data[i], heads[i], cfg, f"layer {i} attention predictor")
            m, lm = train_mlp(data[i], cfg, f"layer {i} MLP predictor")
            attn.append(a.eval())
            mlp.append(m.eval())
            losses[i] = {"attn": la, "mlp": lm}
    pr = Predictors(attn, mlp, [0.5] * len(attn), [0.5] * len(mlp), cfg, mlp_block)
    pr.losses = losses
    if n_val:
        val = collect(model, val_rows, cfg, mlp_block, subsample=False,
                      desc="predictor thresholds")
        for i, d in enumerate(val):
            n = d.pooled_h.shape[1]
            with torch.no_grad():
                s = attn[i](d.pooled_h)
            off = (_offdiag_cells(n) & d.cells[:, None]).expand_as(s)
            truth = exposer.keep_by_mass(d.attn_target, cfg.mass)
            pr.attn_thr[i] = _threshold(s[off], truth[off], cfg.recall_target)
            # the operator runs the union over a sequence: pick the threshold on that union
            ms = pr.mlp_scores(i, d.mlp_x[None])[0].view(*val_rows.shape, -1).amax(1)
            pr.mlp_thr[i] = _threshold(ms, d.mlp_seq, cfg.recall_target)
    return pr
