"""The MoE-routing harness: prompts, the loaded Setup, held-out quality, one (routing, prompt) run.

    python -c "from benchlab import moe_routing as m; e = m.harness; \
s = e.load_setup(m.CONFIGS['tiny']); print(e.run_prompt(s, 'bh_moderate', m.PROMPTS[0], 8))"
"""

import functools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..core import stats
from ..core.errors import BenchlabError
from .calibration import EmpiricalNull
from .model import apply_routing, calibrate, collect_stats, model_digest, routing_meta
from .routers import ROUTINGS, route


@dataclass(frozen=True)
class Prompt:
    id: str
    category: str  # simple | medium | complex | domain
    text: str


PROMPTS = (
    Prompt("simple_1", "simple", "The capital of France is"),
    Prompt("simple_2", "simple", "The color of the sky on a clear day is"),
    Prompt("simple_3", "simple", "One, two, three, four,"),
    Prompt("medium_1", "medium", "Explain in two sentences why the seasons change on Earth."),
    Prompt("medium_2", "medium", "Write a short story about a robot who learns to paint."),
    Prompt("medium_3", "medium", "Summarize the main causes of the French Revolution."),
    Prompt("complex_1", "complex",
           "Compare the trade-offs between consistency and availability in distributed "
           "databases, and give an example where each choice is the right one."),
    Prompt("complex_2", "complex",
           "A train leaves at 3 pm at 60 km/h and another at 4 pm at 90 km/h on the same track. "
           "When does the second catch up, and how would you check the answer?"),
    Prompt("complex_3", "complex",
           "Argue for and against the claim that language models understand text, citing "
           "concrete evidence on both sides."),
    Prompt("domain_1", "domain",
           "In Python, the difference between a list comprehension and a generator expression is"),
    Prompt("domain_2", "domain",
           "The Benjamini-Hochberg procedure controls the false discovery rate by"),
    Prompt("domain_3", "domain",
           "In a mixture-of-experts transformer, the router assigns each token to"),
)


def prompts(per_category: int) -> list[Prompt]:
    out = []
    for cat in ("simple", "medium", "complex", "domain"):
        out += [p for p in PROMPTS if p.category == cat][:per_category]
    return out


def prompt(pid: str) -> Prompt:
    for p in PROMPTS:
        if p.id == pid:
            return p
    raise BenchlabError(f"prompt {pid!r}: unknown; known: {', '.join(p.id for p in PROMPTS)}")


@dataclass
class Setup:
    """Everything a run needs: model, tokenizer, calibration and held-out tokens, and the nulls
    (one per calibrated routing, calibrated under that routing, built on first use and kept in
    `null_dir` when given: a stored null is checked against this model before it is reused)."""

    model: object
    tokenizer: object
    calib: torch.Tensor  # [B, S] calibration token ids (zoo corpus "train")
    heldout: torch.Tensor  # [B, S] token ids (zoo corpus "val")
    reference: torch.Tensor  # [B, S, V] topk_8 log-probs on the held-out text
    device: str
    model_name: str
    model_digest: str = ""
    null_dir: str | None = None
    nulls: dict = field(default_factory=dict)

    def null_for(self, routing, under=None) -> EmpiricalNull | None:
        """The null of `routing` (a Routing or name) calibrated under `under` (default: itself);
        None for routings without one."""
        r = ROUTINGS.get(routing) if isinstance(routing, str) else routing
        if not r.calibrated:
            return None
        u = r if under is None else (ROUTINGS.get(under) if isinstance(under, str) else under)
        key = (r.null, r.temperature, u)
        if key not in self.nulls:
            self.nulls[key] = self._null(r, u)
        return self.nulls[key]

    def _null(self, r, u) -> EmpiricalNull:
        expect = {"model_digest": self.model_digest, "definition": r.null,
                  "temperature": r.temperature, "routing": routing_meta(u),
                  "layers": self.model.config.num_hidden_layers,
                  "experts": self.model.config.num_experts, "tokens": int(self.calib.numel())}
        path = None
        if self.null_dir is not None:
            path = Path(self.null_dir) / f"{r.null}-t{r.temperature:g}-under-{u.name}.safetensors"
            if path.exists():
                return EmpiricalNull.load(path, expect).to(self.device)
        null = calibrate(self.model, self.calib, r.null, temperature=r.temperature, under=u,
                         meta={"model": self.model_name, "model_digest": self.model_digest,
                               "corpus": "zoo corpus train"})
        if path is not None:
            null.save(path)
        return null


def encode(tok, text: str) -> list[int]:
    ids = tok.encode(text)  # a tokenizers Encoding (.ids) or a transformers list
    return list(getattr(ids, "ids", ids))


def corpus_ids(tok, split: str, n_tokens: int, seq_len: int) -> torch.Tensor:
    """[n_tokens // seq_len, seq_len] token ids from the zoo corpus split ("train" | "val")."""
    from .. import zoo

    ids: list[int] = []
    for doc in zoo.corpus_documents(split):
        ids += encode(tok, doc)
        if len(ids) >= n_tokens:
            break
    rows = min(n_tokens, len(ids)) // seq_len
    if rows == 0:
        raise BenchlabError(f"zoo corpus {split!r}: fewer than {seq_len} tokens")
    return torch.tensor(ids[:rows * seq_len]).view(rows, seq_len)


def load_model(config, device: str, fp16: bool, model: str | None = None):
    """The zoo model of `config` (or the directory/name `model`) and its tokenizer."""
    from .. import zoo

    name = model or config.model
    dtype = torch.bfloat16 if fp16 and device.startswith("cuda") else torch.float32
    if config.source == "trained" and model is None:
        m = zoo.trained(name).to(device=device, dtype=dtype)
    elif config.source == "random" and model is None:
        m = zoo.build(name).to(device=device, dtype=dtype)
    else:
        m = zoo.load(name, dtype=dtype, device=device)
    if getattr(m.config, "model_type", None) != "olmoe":
        raise BenchlabError(f"--model {name}: model_type: need an OLMoE model, "
                            f"got {getattr(m.config, 'model_type', None)!r}")
    try:
        hub = zoo.spec(name).hub_id
    except BenchlabError:
        hub = name  # a local directory or hub id carries its own tokenizer
    if hub is None or (Path(hub).is_dir() and not (Path(hub) / "tokenizer.json").exists()):
        tok = zoo.tokenizer("bpe")
    else:  # the models folder ($BENCHLAB_MODELS) first, as zoo.load read the weights
        tok = zoo.load_tokenizer(name)
    return m.eval(), tok


@functools.cache
def load_setup(config, device: str = "cpu", fp16: bool = False, model: str | None = None,
               null_dir: str | None = None) -> Setup:
    """Model, tokenizer, calibration text (zoo corpus "train") and held-out text (zoo corpus
    "val"). Cached per process; nulls are made on first use (stored in `null_dir`)."""
    m, tok = load_model(config, device, fp16, model)
    calib = corpus_ids(tok, "train", config.calib_tokens, config.seq_len).to(device)
    heldout = corpus_ids(tok, "val", config.heldout_tokens, config.seq_len).to(device)
    apply_routing(m, "topk_8")
    with torch.no_grad():
        ref = torch.log_softmax(m(input_ids=heldout, use_cache=False).logits.float(), -1)
    return Setup(m, tok, calib, heldout, ref, device, model or config.model, model_digest(m),
                 null_dir)


@torch.no_grad()
def heldout_eval(setup: Setup, routing, null=None) -> dict:
    """Per-token arrays of `routing` on the held-out text (with `null`, default the routing's own
    null calibrated under itself): kl [B*S] = KL(topk_8 || routing) of the next-token
    distribution, nll [B*(S-1)], experts [B*S] (mean over layers); and per layer [L]: the share
    of token-layers where BH (or the threshold) selected nothing and min_k filled in (fill_in),
    the share of those whose fill-in is the router's own top expert (fill_in_top), and
    P(p <= alpha) (p_below)."""
    r = ROUTINGS.get(routing) if isinstance(routing, str) else routing
    null = setup.null_for(r) if null is None else null
    m = apply_routing(setup.model, r, null)
    with collect_stats(m, keep_logits=r.calibrated) as st:
        logp = torch.log_softmax(m(input_ids=setup.heldout, use_cache=False).logits.float(), -1)
    ref = setup.reference
    out = {"kl": (ref.exp() * (ref - logp)).sum(-1).flatten().cpu().numpy(),
           "nll": (-logp[:, :-1].gather(-1, setup.heldout[:, 1:, None])).flatten().cpu().numpy(),
           "experts": torch.stack([torch.cat(c) for c in st.counts]).float().mean(0).numpy()}
    if r.calibrated:
        fill, top, below = [], [], []
        for i, chunks in enumerate(st.logits):
            x, layer = torch.cat(chunks).to(setup.device), null.layer(i)
            chosen = (layer.kstar(x, r.alpha) if r.method == "bh"  # before the caps
                      else (layer.pvalues(x) <= r.alpha).sum(-1))
            filled = chosen < r.min_k
            mask = route(x, r, layer)[0]
            is_top = mask.gather(-1, x.argmax(-1, keepdim=True))[:, 0]
            fill.append(float(filled.float().mean()))
            top.append(float(is_top[filled].float().mean()) if filled.any() else float("nan"))
            below.append(float((layer.pvalues(x) <= r.alpha).float().mean()))
        out.update(fill_in=fill, fill_in_top=top, p_below=below)
    return out


_QUALITY: dict = {}  # (id(setup), routing) -> quality: once per routing, not per prompt


def quality(setup: Setup, routing: str) -> dict:
    """Held-out quality of `routing`: mean per-token KL(topk_8 || routing) of the next-token
    distribution, perplexity, the experts it used per (token, layer), the min_k fill-in share.
    Cached per setup and routing."""
    key = (id(setup), routing)
    if key in _QUALITY:
        return _QUALITY[key]
    ev = heldout_eval(setup, routing)
    out = {"heldout_kl": float(ev["kl"].mean()), "heldout_ppl": float(math.exp(ev["nll"].mean())),
           "heldout_tokens": int(setup.heldout.numel()),
           "heldout_avg_experts": float(ev["experts"].mean())}
    if "fill_in" in ev:
        out["heldout_fill_in"] = float(sum(ev["fill_in"]) / len(ev["fill_in"]))
        out["heldout_fill_in_by_layer"] = ev["fill_in"]
    _QUALITY[key] = out
    return out


def generate(setup: Setup, ids: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
    """Greedy decoding of exactly `max_new_tokens` tokens (equal lengths keep timings paired)."""
    with torch.no_grad():
        return setup.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=setup.model.config.pad_token_id)


def utilization(usage: torch.Tensor) -> tuple[float, float]:
    """Mean over layers of the CV of per-expert usage, and max / max(min, 1) pooled over layers."""
    cvs = [stats.cv(row.numpy()) for row in usage if row.sum() > 0]
    total = usage.sum(0).float()
    return float(sum(cvs) / len(cvs)), float(total.max() / total.min().clamp(min=1))


def run_prompt(setup: Setup, routing: str, p: Prompt, max_new_tokens: int,
               timer=None) -> dict:
    """The seed's metrics for one (routing, prompt); `timer(fn) -> seconds` times generation
    (default: one call after one warm-up)."""
    null = setup.null_for(routing)
    m = apply_routing(setup.model, routing, null)
    ids = torch.tensor([encode(setup.tokenizer, p.text)], device=setup.device)  # [1, S]
    first: dict = {}

    def fn():  # the first call (the warm-up) also collects the routing statistics
        if first:
            return generate(setup, ids, max_new_tokens)
        with collect_stats(m) as st:
            first.update(out=generate(setup, ids, max_new_tokens), stats=st)
        return first["out"]

    if timer is None:
        fn()
        t0 = time.perf_counter()
        fn()
        seconds = time.perf_counter() - t0
    else:
        seconds = timer(fn)
    out, st = first["out"], first["stats"]
    new = out[0, ids.shape[1]:].tolist()
    counts = st.per_token()
    cv, ratio = utilization(st.usage)
    with torch.no_grad():  # KL from topk_8 on the prompt itself
        logp = torch.log_softmax(m(input_ids=ids, use_cache=False).logits.float(), -1)
        apply_routing(m, "topk_8")
        ref = torch.log_softmax(m(input_ids=ids, use_cache=False).logits.float(), -1)
    return {
        "avg_experts": float(counts.mean()), "std_experts": float(counts.std(unbiased=False)),
        "min_experts": int(counts.min()), "max_experts": int(counts.max()),
        "inference_time": seconds, "tokens_per_second": len(new) / seconds,
        "util_cv": cv, "util_max_min_ratio": ratio,
        "input_tokens": int(ids.shape[1]), "output_tokens": len(new),
        "generated_text": setup.tokenizer.decode(new),
        "prompt_kl": float((ref.exp() * (ref - logp)).sum(-1).mean()),
        **quality(setup, routing),
        "null_digest": null.digest() if null is not None else "",
        "calib_tokens": null.meta["tokens"] if null is not None else 0,
    }
