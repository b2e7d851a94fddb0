"""The setups the Long Exposure benchmarks run: packed E2E-style data rows, the base models and
predictors (cached per process), and trainers (model + method + dense/LE + optimizer + batch).
Each trainer deep-copies its base model, so dense and LE runs never share weights or state.

    python -c "from benchlab.long_exposure import CONFIGS; from benchlab.long_exposure.setups \
import *; t = trainer(CONFIGS['tiny'], 'opt-tiny', 'lora', 512, mode='le'); print(t.step())"
"""

import copy
import functools
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.errors import BenchlabError
from ..core.stats import medians, paired_ratio
from ..core.timing import synchronize
from . import finetune, patch, peft_methods
from .e2e import write_e2e_jsonl
from .masks import RandomLike, Split, to_device

MLP_BLOCK = 64  # neurons per MLP block (the artifact's fc1 tile width)
# trainer modes: dense attention implementations (all inside documents, patch.py; sdpa_causal is
# the old cross-document path, a reference only) and Long Exposure with its attention operator
DENSE_MODES = ("eager", "sdpa", "sdpa_docs", "sdpa_causal", "flex")
LE_MODES = {"le": "sparse", "le_flex": "flex"}


@functools.cache
def base_model(name: str, init: str = "trained"):
    """The model of a zoo name (init="random": the zoo's seeded init), dropout off so dense and
    LE runs compute the same function."""
    from benchlab import zoo

    if init not in ("trained", "random"):
        raise ValueError(f"init: unknown {init!r}; choose trained or random")
    return peft_methods.disable_dropout(load(name) if init == "trained" else zoo.build(name))


def load(name: str):
    """zoo.load(name), with a progress line for a paper spec's weights (minutes for a real one)."""
    from tqdm.auto import tqdm

    from benchlab import zoo

    if Path(name).is_dir() or name in zoo.MODELS and zoo.spec(name).hub_id is None:
        return zoo.load(name)
    with tqdm(total=1, desc=f"loading {name} from {zoo.resolve(name)}", leave=False) as bar:
        model = zoo.load(name)
        bar.update()
    return model


@functools.cache
def _records_file(n: int, seed: int) -> Path:
    """Seeded E2E-style records written once per process to a temporary JSONL file."""
    path = Path(tempfile.mkdtemp(prefix="benchlab-le-")) / f"e2e-{n}-{seed}.jsonl"
    return write_e2e_jsonl(path, n, seed)


def data_rows(path, model: str, seq_len: int) -> torch.Tensor:
    """(N, seq_len) packed rows of a data file for `model`: text records (JSONL, E2E CSV)
    tokenized, pre-tokenized JSONL used as is (ids checked against the vocabulary; a document
    ending with end-of-text gets no second one, one inside a document splits it)."""
    from benchlab.zoo import data

    tok = finetune.tokenizer_for(model)
    try:
        if not data.is_tokenized(path):
            return finetune.packed_rows(data.read_records(path), tok, seq_len)
        eos = finetune.eos_id(tok)
        docs = data.read_token_docs(path, len(tok) if hasattr(tok, "__len__") else tok.vocab_size)
        return finetune.pack([d[:-1] if d[-1] == eos else d for d in docs], seq_len, eos)
    except BenchlabError as e:
        if str(e).startswith(str(path)):
            raise
        raise BenchlabError(f"{path}: {e}") from None


@functools.cache
def rows(model: str, n_records: int, seq_len: int, seed: int = 0) -> torch.Tensor:
    """(N, seq_len) packed token rows of the seeded records, tokenized for `model`."""
    from benchlab.zoo.data import read_records

    recs = read_records(_records_file(n_records, seed))
    return finetune.packed_rows(recs, finetune.tokenizer_for(model), seq_len)


def predictor_rows(config, model: str, seq_len: int) -> torch.Tensor:
    """The predictors' (and neuron orders') training rows; the fine-tuning batches follow."""
    return rows(model, config.n_records, seq_len, config.seed)[: config.predictor_rows]


def batch(config, model: str, seq_len: int, index: int = 0) -> torch.Tensor:
    """A (batch_size, seq_len) batch after the predictors' training rows."""
    r = rows(model, config.n_records, seq_len, config.seed)[config.predictor_rows:]
    n = r.shape[0] // config.batch_size
    if n == 0:
        raise ValueError(f"n_records: too few records for batches of {seq_len} tokens")
    i = index % n
    return r[i * config.batch_size:(i + 1) * config.batch_size]


def train_predictors(config, model: str, data: torch.Tensor, base=None):
    """Predictors of `model` (or of `base`, a modified copy of it) trained on rows `data`."""
    from . import predictors as predictor_study

    o = config.ops
    cfg = predictor_study.PredictorConfig(mass=o.mass, mlp_rel=o.mlp_rel, rank=o.rank,
                             steps=o.predictor_steps, seed=config.seed)
    return predictor_study.train_predictors(base if base is not None else base_model(model), data,
                               mlp_block=MLP_BLOCK, cfg=cfg)


@functools.cache
def predictors(config, model: str, seq_len: int, reorder: bool = False):
    """Predictors trained on predictor_rows; `reorder`: on the neuron-reordered model."""
    base = reordered_model(config, model, seq_len) if reorder else None
    return train_predictors(config, model, predictor_rows(config, model, seq_len), base=base)


MASKS = ("predicted", "random", "random_attn", "random_mlp", "all")


def mask_source(config, model: str, masks: str, seq_len: int, *, reorder: bool = False):
    """`masks` in MASKS: the trained predictors; random blocks (RandomLike: as many as the
    predicted masks keep, inside the documents) for both parts, attention only or MLP only;
    all (KeepAll). `reorder`: the predictors of reordered_model."""
    cfg = base_model(model).config
    if masks not in MASKS:
        raise ValueError(f"masks: unknown {masks!r}; choose {', '.join(MASKS)}")
    if masks == "all":
        return patch.KeepAll(cfg.num_attention_heads, cfg.ffn_dim, MLP_BLOCK)
    pred = predictors(config, model, seq_len, reorder)
    if masks == "predicted":
        return pred
    rand = RandomLike(pred, seed=config.seed)
    return {"random": rand, "random_attn": Split(rand, pred),
            "random_mlp": Split(pred, rand)}[masks]


@functools.cache
def neuron_orders(config, model: str, seq_len: int) -> tuple:
    """Per layer, mlp_grain.neuron_order on the predictors' training rows of length `seq_len`."""
    from .exposer import run_captured
    from .mlp_grain import neuron_order

    cap = run_captured(base_model(model), predictor_rows(config, model, seq_len))
    return tuple(neuron_order(cap.act[i], config.ops.mlp_rel) for i in sorted(cap.act))


def reorder_mlp(model, orders) -> None:
    """Permute every OPT layer's MLP neurons in place by `orders`: the same function, its
    active neurons share fewer blocks."""
    from .mlp_grain import permute_mlp
    from .peft_methods import decoder_layers

    layers = decoder_layers(model)
    if len(layers) != len(orders):
        raise ValueError(f"orders: {len(orders)} for {len(layers)} layers")
    for layer, order in zip(layers, orders, strict=True):
        permute_mlp(layer, order)


@functools.cache
def reordered_model(config, model: str, seq_len: int):
    """A copy of base_model(model) with its MLP neurons reordered (neuron_orders)."""
    m = copy.deepcopy(base_model(model))
    reorder_mlp(m, neuron_orders(config, model, seq_len))
    return m


@dataclass
class Trainer:
    model: object
    opt: object
    batch: torch.Tensor
    stats: patch.Stats | None  # LE statistics (None: dense)
    bf16: bool = False  # steps under bf16 autocast

    def step(self) -> float:
        return finetune.train_step(self.model, self.opt, self.batch, self.bf16)

    def timed_step(self) -> dict:
        """Seconds of one step's forward (minus mask prediction), backward, optimizer,
        predictor, and `step`, their sum (each part ends with a synchronize)."""
        if self.stats is not None:
            self.stats.mask_seconds = 0.0

        def now():
            synchronize(self.batch.device)
            return time.perf_counter()

        t0 = now()
        with finetune.autocast(self.batch, self.bf16):
            loss = self.model(input_ids=self.batch, labels=self.batch).loss
        t1 = now()
        loss.backward()
        t2 = now()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        t3 = now()
        pred = self.stats.mask_seconds if self.stats is not None else 0.0
        return {"forward": t1 - t0 - pred, "backward": t2 - t1, "optimizer": t3 - t2,
                "predictor": pred, "step": t3 - t0}


def runs(method: str, mode: str) -> bool:
    """Whether `method` can run in `mode`: patch.py's layers have no prefix keys, so prefix
    tuning runs on Hugging Face's attention only."""
    return method != "prefix" or mode in peft_methods.ATTN_IMPLS


def check_method_mode(method: str, mode: str) -> None:
    """A one-line error where `method` cannot run in `mode` (runs)."""
    if not runs(method, mode):
        raise BenchlabError(f"mode: {mode!r} cannot run prefix tuning (patch.py's layers, dense "
                            f"or Long Exposure, have no prefix keys); choose "
                            f"{' or '.join(peft_methods.ATTN_IMPLS)}")


def trainer(config, model: str, method: str, seq_len: int, *, mode: str = "sdpa",
            masks: str = "predicted", part: str = "both", device: str = "cpu",
            source=None, data: torch.Tensor | None = None,
            init: str = "trained", dense_above: dict | None = None,
            bf16: bool = False) -> Trainer:
    """A fresh trainable copy of `model` with `method`, mode in DENSE_MODES or LE_MODES.
    `source` overrides the mask source, `data` the step's batch; `dense_above`: patch's
    per-part break-even densities (None: sparse operators always)."""
    check_method_mode(method, mode)
    m = copy.deepcopy(base_model(model, init)).to(device)
    with torch.random.fork_rng(devices=[]):  # same LoRA / adapter init for every mode
        torch.manual_seed(config.seed)
        m = peft_methods.apply_method(m, method)
    stats = None
    if method == "prefix":  # Hugging Face attention over prefix + documents (peft_methods)
        peft_methods.attend_in_documents(peft_methods.set_attention(m, mode))
    elif mode in LE_MODES:
        source = to_device(source or mask_source(config, model, masks, seq_len), device)
        stats = patch.patch(m, patch.Parts(source, part), attn=LE_MODES[mode], mlp_block=MLP_BLOCK,
                        dense_above=dense_above)
    elif mode in DENSE_MODES:
        patch.patch(m, None, attn=mode)
    else:
        modes = ", ".join(DENSE_MODES + tuple(LE_MODES))
        raise ValueError(f"mode: unknown {mode!r}; choose {modes}")
    m.train()
    data = batch(config, model, seq_len) if data is None else data
    return Trainer(m, finetune.make_optimizer(m, config.lr), data.to(device), stats, bf16)


def speedups(times: dict) -> dict:
    """t_<name> medians of per-round step seconds and, with an "le" entry, speedup_<name>:
    the paired median of t_<name> / t_le per dense baseline."""
    out = {f"t_{k}": v for k, v in medians(times).items()}
    if "le" in times:
        out.update({f"speedup_{k}": paired_ratio(v, times["le"])
                    for k, v in times.items() if k != "le"})
    return out


def densities(stats: patch.Stats, layers: tuple = ()) -> dict:
    """The densities an LE run ran at (patch.Stats), and per layer for the kinds in `layers`."""
    return {"density_attn": stats.density("attn"), "density_doc": stats.density("doc"),
            "density_mlp": stats.density("mlp"), "keeps_everything": stats.keeps_everything(),
            **{f"layer_density_{k}": stats.layer_densities(k) for k in layers}}


def curve(config, model: str, masks: str, *, reorder: bool = False, progress=None) -> dict:
    """LoRA loss curve over `curve_steps` batches, "dense" (SDPA inside documents) or LE with
    mask_source's `masks` -> losses (LE: and densities). `reorder`: on the reordered model."""
    L = config.curve_seq_len
    data = rows(model, config.n_records, L, config.seed)
    source = None if masks == "dense" else mask_source(config, model, masks, L, reorder=reorder)
    t = trainer(config, model, "lora", L, mode="sdpa" if masks == "dense" else "le",
                source=source)
    if reorder:
        reorder_mlp(t.model, neuron_orders(config, model, L))
    batches = finetune.batches(data[config.predictor_rows:], config.batch_size, config.curve_steps)
    losses, _ = finetune.finetune(t.model, batches, lr=config.lr, progress=progress,
                            desc=f"loss curve, {masks} masks{' (reordered)' if reorder else ''}")
    out = {"losses": losses}
    if t.stats is not None:
        out.update(densities(t.stats, ("attn", "mlp")))
    return out


MLP_ACTIVITY = ("mlp_neuron_token", "mlp_neuron_seq_union", "mlp_token", "mlp_seq_union")


@functools.cache
def mlp_activity(config, model: str, seq_len: int) -> dict:
    """MLP_ACTIVITY per layer and <name>_mean of the base model on the step's batch, as
    exposer.mlp_sparsity measures it (GELU is never exactly zero: |act| against the token's
    max). Cached: the PEFT methods of one model share it."""
    from .exposer import ExposerConfig, mlp_sparsity, run_captured

    ids = batch(config, model, seq_len)
    cfg = ExposerConfig(mlp_block=MLP_BLOCK, mlp_rel=config.ops.mlp_rel)
    valid = torch.ones(ids.shape, dtype=torch.bool)
    with torch.no_grad():
        cap = run_captured(base_model(model), ids)
    layers = [mlp_sparsity(cap.act[i].float(), cfg, valid) for i in sorted(cap.act)]
    out = {k: [la[k] for la in layers] for k in MLP_ACTIVITY}
    return {**out, **{f"{k}_mean": sum(v) / len(v) for k, v in out.items()}}


def exposed_source(model, ids: torch.Tensor, mass: float, mlp_rel: float) -> patch.Fixed:
    """The exposer's true masks of `ids` on `model` (block keep, MLP sequence union)."""
    from .exposer import ExposerConfig, expose

    with torch.no_grad():
        ex = expose(model, ids, ExposerConfig(mass=mass, mlp_block=MLP_BLOCK, mlp_rel=mlp_rel))
    return patch.Fixed([la.attn_block_mask for la in ex.layers],
                       [la.mlp_seq_mask for la in ex.layers])


def break_even(config, model: str, seq_len: int, init: str = "trained",
               device: str = "cpu", rounds: int | None = None) -> dict:
    """Break-even densities {"attn", "mlp"} of the operators at this model's shapes, measured
    now (breakeven.py), and their speedup curves {"attn_curve", "mlp_curve"}."""
    from . import breakeven

    cfg = base_model(model, init).config
    H = cfg.num_attention_heads
    rounds = config.step_rounds if rounds is None else rounds
    a, ac = breakeven.attention(config.batch_size, H, seq_len, cfg.hidden_size // H, rounds=rounds,
                         seed=config.seed, device=device)
    m, mc = breakeven.mlp(config.batch_size * seq_len, cfg.hidden_size, cfg.ffn_dim, MLP_BLOCK,
                   rounds=rounds, seed=config.seed, device=device)
    return {"attn": a, "mlp": m, "attn_curve": ac, "mlp_curve": mc}


def model_step_trainers(config, model: str, seq_len: int, masks: str, density: float,
                        init: str, device: str = "cpu", dense_above: dict | None = None) -> dict:
    """LoRA trainers by mode (CUDA: also "le_flex") on one batch, LE masks fixed before
    timing: the exposer's (masks="exposed") or random at `density` ("synthetic").
    "le_dispatch" runs a layer part dense where its mask is above `dense_above`."""
    data = batch(config, model, seq_len)
    if masks == "exposed":
        src = exposed_source(base_model(model, init), data, config.ops.mass, config.ops.mlp_rel)
    elif masks == "synthetic":
        cfg = base_model(model, init).config
        src = patch.RandomMasks(cfg.num_attention_heads, cfg.ffn_dim, MLP_BLOCK, density, density,
                            seed=config.seed)
    else:
        raise ValueError(f"masks: unknown {masks!r}; choose exposed or synthetic")
    modes = ("le", "sdpa", "sdpa_docs", "sdpa_causal", "eager") + (
        ("le_flex",) if device.startswith("cuda") else ())  # no flex backward on CPU
    out = {mode: trainer(config, model, "lora", seq_len, mode=mode, device=device, data=data,
                         init=init, source=src if mode in LE_MODES else None)
           for mode in modes}
    out["le_dispatch"] = trainer(config, model, "lora", seq_len, mode="le", device=device,
                                 data=data, init=init, source=src,
                                 dense_above=dense_above or {"attn": 1.0, "mlp": 1.0})
    return out
