"""The bound of a trained SubLoRA model: quantize w, code it, evaluate sampled documents, bound.

    benchlab sublora eval-bounds --checkpoint out/d1000_learned_s42

Quantize w (optionally fine-tuned `bounds.qat_iters` steps through a straight-through estimator),
code it with the gate logits (bounds.compress), then evaluate s documents sampled with
`bounds.sample_seed`, each one sequence (input [EOT] + doc[:-1], targets doc, cut to
`bounds.max_doc_tokens`), with the *quantized* w and the sent gates; bounds.bounds_metrics.
"""

import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import bounds
from .config import RunConfig
from .data import Corpus, get_batch, sample_documents
from .projectors import derive_seed
from .quantize import Quantized, quantize, quantize_ste, snap
from .subspace import SubspaceModel

TOKENS_PER_BATCH = 8192


def vocab_size(model: SubspaceModel) -> int:
    """V of the bound: the size of the model's output distribution."""
    return int(model.net.config.vocab_size)


def quantize_w(model: SubspaceModel, cfg: RunConfig, corpus: Corpus | None = None,
               device="cpu") -> Quantized:
    """w quantized as the bound config asks; with qat_iters > 0, fine-tuned through the STE."""
    b = cfg.bounds
    q = quantize(model.w.detach().cpu(), b.levels, b.quant_method)
    if b.qat_iters <= 0:
        return q
    w = model.w.detach().clone().requires_grad_(True)
    centroids = torch.tensor(q.codebook, device=w.device, requires_grad=True)
    opt = torch.optim.Adam([w, centroids], lr=b.qat_lr)
    seed = derive_seed(cfg.system.seed, "qat")
    for it in tqdm(range(b.qat_iters), desc="bound: quantization-aware fine-tuning", leave=False,
                   delay=1.0):
        x, y = get_batch(corpus.train, seed=seed, step=it, batch=cfg.data.batch_size,
                         block=cfg.data.block_size, device=device)
        loss = model.loss(x, y, w=quantize_ste(w, centroids), gates=model.gates.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return snap(w.detach().cpu(), centroids.detach().cpu())


@torch.no_grad()
def document_risks(model: SubspaceModel, corpus: Corpus, docs: np.ndarray, cfg: RunConfig,
                   w: torch.Tensor, gates: torch.Tensor, device="cpu") -> bounds.DocumentRisks:
    """R_s per alpha and top-k errors over the documents `docs` (indices into the train split)."""
    b = cfg.bounds
    acc = bounds.DocumentRisks(vocab_size(model), b.alphas, b.topk)
    seqs = [corpus.train.document(int(i))[: b.max_doc_tokens] for i in docs]
    order = np.argsort([len(s) for s in seqs], kind="stable")
    model.eval()
    theta = model.lora_tensors(w.to(device), gates.to(device))
    groups, cur = [], []
    for j in order:  # ascending length: a group's last document is its longest
        if cur and (len(cur) + 1) * len(seqs[j]) > TOKENS_PER_BATCH:
            groups.append(cur)
            cur = []
        cur.append(j)
    groups += [cur] if cur else []
    for group in tqdm(groups, desc=f"bound: evaluating {len(seqs)} documents", unit="batch",
                      leave=False, delay=1.0):
        longest = len(seqs[group[-1]])
        x = torch.full((len(group), longest), corpus.eot, dtype=torch.long)
        for r, j in enumerate(group):
            s = torch.from_numpy(seqs[j])
            x[r, 1:len(s)] = s[:-1]                       # [EOT] + doc[:-1]; rest is padding
        logits = model.net_forward(x.to(device), theta)   # (n, longest, V)
        for r, j in enumerate(group):
            s = torch.from_numpy(seqs[j])
            probs, ranks = bounds.target_stats(logits[r, :len(s)], s)
            acc.add(probs, ranks)
    return acc


def eval_bounds(model: SubspaceModel, corpus: Corpus, cfg: RunConfig, *, device="cpu",
                out_dir: str | Path | None = None, inputs: dict | None = None) -> dict:
    """The bound metrics dict (see bounds.bounds_metrics), saved under out_dir if given."""
    b = cfg.bounds
    t0 = time.perf_counter()
    q = quantize_w(model, cfg, corpus, device)
    message = bounds.compress(q, side=model.gates.detach().cpu() if model.groups else ())
    docs = sample_documents(corpus.m, b.bound_samples, b.sample_seed)
    w_hat = torch.from_numpy(q.values).float()
    acc = document_risks(model, corpus, docs, cfg, w_hat, model.gates.detach(), device)
    info = {"d": cfg.sublora.intrinsic_dim, "mode": cfg.sublora.allocation_mode,
            "ratio": cfg.sublora.allocation_ratio, "seed": cfg.system.seed,
            "projector": cfg.sublora.intrinsic_mode, "quant_method": q.method,
            "qat_iters": b.qat_iters, "corpus": corpus.source, "sample_seed": b.sample_seed,
            "max_doc_tokens": b.max_doc_tokens, "doc_tokens": acc.n_tokens,
            "gamma_B": model.d_share_B(), **(inputs or {})}
    metrics = bounds.bounds_metrics(message, acc.risks(), alphas=b.alphas,
                                    vocab_size=vocab_size(model), m=corpus.m, s=len(docs),
                                    extra_bits=b.misc_extra_bits, eps=b.eps,
                                    topk_errors=acc.topk_errors(), raw_bpd=acc.raw_bpd(),
                                    grid_in_sample_term=b.grid_in_sample_term, inputs=info)
    metrics["eval_seconds"] = time.perf_counter() - t0
    if out_dir is not None:
        bounds.save_bounds_metrics(metrics, out_dir)
    return metrics
