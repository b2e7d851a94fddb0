"""Fig 8 (exp-overall-memory-*): the memory cases of every scale, measure_memory on one tiny
point, the saved-tensor accounting of finetune.step_memory against an independent count, and the
paper path (zoo.load of a local save_pretrained directory with each paper panel's OPT layout).

    pytest tests/long_exposure/test_le_memory.py -q
"""

import dataclasses
import types

import pytest
import torch
from torch import nn

from benchlab import zoo
from benchlab.core import Timer
from benchlab.long_exposure import CONFIGS, Case, memory_cases, setups
from benchlab.long_exposure import finetune as ft
from benchlab.long_exposure import peft_methods as pm
from benchlab.long_exposure.measure import MEMORY_MODES, measure_memory

L = 128  # the shortest length of the sweep
PARTS = ("weights", "grads_optimizer", "activations")
# the tiny scale at one length and fewer records (enough packed rows of 128 for the predictors'
# rows and one batch): one config object, so setups' per-config caches are shared below
TINY = dataclasses.replace(CONFIGS["tiny"], memory_seq_lens=(L,), n_records=200)


def _figures(config) -> dict[str, list[Case]]:
    out: dict[str, list[Case]] = {}
    for case in memory_cases(config):
        out.setdefault(case.figure, []).append(case)
    return out


@pytest.mark.parametrize("scale", sorted(CONFIGS))
def test_memory_cases_one_distinct_model_per_figure(scale):
    """Each figure plots one model, no model is plotted under two figure names (nor two names
    that are the same model: same zoo config and checkpoint), every configured method appears at
    every length of 128..2048, once. A config that repeats a model across panels, or a
    memory_cases that drops a method or a length, fails here."""
    config = CONFIGS[scale]
    figs = _figures(config)
    assert list(figs) == [f"exp-overall-memory-{fig}" for fig, _ in config.memory_models]
    models = []
    for fig, cases in figs.items():
        (model,) = {c.model for c in cases}  # one model per figure
        models.append(model)
        assert all(c.kind == "memory" for c in cases)
        assert {(c.method, c.seq_len) for c in cases} == {
            (m, n) for m in config.methods for n in config.memory_seq_lens}
        assert len(cases) == len(config.methods) * len(config.memory_seq_lens), fig
        assert zoo.spec(model).family == "opt", fig  # Fig 8 is OPT's
    assert len(set(models)) == len(models), models
    specs = [(repr(sorted(zoo.spec(m).config.items())), zoo.spec(m).hub_id) for m in models]
    assert len(set(specs)) == len(specs), models
    assert len({c.id for c in memory_cases(config)}) == len(memory_cases(config))
    assert min(config.memory_seq_lens) == 128 and max(config.memory_seq_lens) == 2048
    if scale == "paper":  # each panel plots the published model it names
        assert dict(config.memory_models) == {"opt-350m": "opt-350m", "opt-1.3b": "opt-1.3b"}
        assert {zoo.spec(m).hub_id for m in models} == {"facebook/opt-350m", "facebook/opt-1.3b"}


def _check_lora_totals(r, model_config):
    """Parts add up to each mode's total; weights (base + LoRA) and gradients + AdamW moments
    (LoRA's) are the float32 bytes of the parameter counts that the OPT config alone gives
    (pm.expected_trainable), the same in every mode."""
    import transformers

    base = transformers.OPTForCausalLM(model_config).num_parameters()  # tied head counted once
    lora = pm.expected_trainable(model_config, "lora")
    for mode in MEMORY_MODES:
        assert r[f"{mode}_total"] == sum(r[f"{mode}_{p}"] for p in PARTS), mode
        assert r[f"{mode}_weights"] == 4 * (base + lora), mode
        assert r[f"{mode}_grads_optimizer"] == 3 * 4 * lora, mode
        assert r[f"{mode}_activations"] > 0, mode
    assert r["memory_ratio"] == r["le_total"] / r["dense_total"]
    assert r["memory_ratio_oracle"] == r["oracle_total"] / r["dense_total"]
    assert r["activation_ratio"] == r["le_activations"] / r["dense_activations"]


def test_measure_memory_tiny_point():
    """One tiny point (LoRA, L=128): totals of dense SDPA, eager, LE and LE-optimal, parts that add
    up, the densities both LE runs kept (packed documents: under 1 for attention) and none for the
    dense modes, and eager above SDPA (it saves the (B, H, T, T) probabilities). A measure_memory
    that mixed up the modes' prefixes, or a ratio the other way up, fails here."""
    (case,) = [c for c in memory_cases(TINY) if c.method == "lora"]
    r = measure_memory(case, TINY, Timer(None, "cpu"))
    _check_lora_totals(r, setups.base_model(case.model).config)
    for mode in ("le", "oracle"):
        assert 0 < r[f"{mode}_density_attn"] < 1 and 0 < r[f"{mode}_density_mlp"] <= 1
    assert not any(f"{m}_density_{p}" in r for m in ("dense", "eager") for p in ("attn", "mlp"))
    assert not any(k.endswith("_cuda_peak") for k in r)  # CPU: counted tensors only
    # eager holds the probabilities, layers * heads * T * T float32, where SDPA saves its output
    # and log-sum-exp (and a float document mask, which eager keeps as bool)
    n = setups.base_model(case.model).config
    probs = n.num_hidden_layers * n.num_attention_heads * L * L * 4
    assert r["eager_activations"] > max(probs, r["dense_activations"])
    assert r["threads"] == 1


class _LinearRelu(nn.Module):
    """A model step_memory can run whose saved tensors are known by hand: x (B, T, 1) float32,
    y = relu(Linear(1, F)(x)), loss = sum(y * y). Autograd saves x (for the weight's gradient),
    relu's output y, and y twice more for the product; the weight is a parameter, and the bias
    is frozen (nothing saved for it)."""

    def __init__(self, ffn: int):
        super().__init__()
        self.lin = nn.Linear(1, ffn)
        self.lin.bias.requires_grad_(False)

    def forward(self, input_ids, labels):
        x = input_ids.to(torch.float32).unsqueeze(-1) / 7.0  # a new storage of B * T floats
        y = torch.relu(self.lin(x))
        return types.SimpleNamespace(loss=(y * y).sum())


def test_step_memory_counts_what_autograd_saves_by_hand():
    """Activations = the storage bytes of x and y, each once: a count per saved tensor (y three
    times), one that counts the weight, or one of element sizes times numel of views, fails."""
    B, T, F = 2, 48, 96
    model = _LinearRelu(F)
    ids = torch.randint(0, 100, (B, T))
    got = ft.step_memory(model, ids)
    assert got["activations"] == B * T * 4 + B * T * F * 4
    assert got["weights"] == 4 * (F + F) and got["grads_optimizer"] == 3 * 4 * F
    assert got["total"] == sum(got[p] for p in PARTS)
    assert model.lin.weight.grad is None  # the step leaves no gradients behind


def _graph_saved_bytes(loss, params) -> int:
    """Bytes of the unique storages autograd saved for backward, enumerated from the graph (each
    node's `_saved_*` attributes; custom Functions' `saved_tensors`), parameters left out. Python
    numbers that autograd keeps as 0-dim float64 tensors ("wrapped numbers", never passed to
    saved_tensors_hooks) are scalars, not activations: left out too."""
    params = {p.untyped_storage().data_ptr() for p in params}
    seen, stack, sizes = set(), [loss.grad_fn], {}
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        values = [getattr(node, a) for a in dir(node) if a.startswith("_saved_")]
        if hasattr(node, "saved_tensors"):
            values.extend(node.saved_tensors)
        for v in values:
            for t in v if isinstance(v, tuple | list) else (v,):
                if not isinstance(t, torch.Tensor) or (t.dim() == 0 and t.dtype == torch.float64):
                    continue
                s = t.untyped_storage()
                if s.data_ptr() not in params:
                    sizes[s.data_ptr()] = max(sizes.get(s.data_ptr(), 0), s.nbytes())
        stack.extend(f for f, _ in node.next_functions)
    return sum(sizes.values())


@pytest.mark.parametrize("mode", ("sdpa", "eager", "le"))
def test_step_memory_equals_the_tensors_in_the_autograd_graph(mode):
    """On the tiny OPT with LoRA (LE: the block-sparse operators' custom Functions too),
    step_memory's activations equal the saved tensors enumerated from the autograd graph of the
    same forward: a pack hook that missed tensors (or counted parameters) fails here."""
    t = setups.trainer(TINY, "opt-tiny", "lora", L, mode=mode)
    got = ft.step_memory(t.model, t.batch)["activations"]
    loss = t.model(input_ids=t.batch, labels=t.batch).loss
    assert got == _graph_saved_bytes(loss, list(t.model.parameters()))


@pytest.mark.parametrize("panel", sorted(dict(CONFIGS["paper"].memory_models)))
def test_paper_memory_path_runs_from_a_local_directory(tmp_path, panel):
    """Fig 8 at paper scale loads opt-350m / opt-1.3b through zoo.load and the checkpoint's own
    tokenizer; the same path runs here on an OPT saved with save_pretrained in the layout of that
    panel's published model (opt-350m: post-LN with 512-wide embeddings projected in and out;
    opt-1.3b: pre-LN) at a reduced width with the zoo's vocabulary: LoRA at L=128, every mode."""
    import transformers

    spec = zoo.spec(dict(CONFIGS["paper"].memory_models)[panel])
    narrow = {"hidden_size": 64, "ffn_dim": 256, "num_hidden_layers": 2,
              "num_attention_heads": 4, "vocab_size": zoo.VOCAB_SIZE, "bos_token_id": zoo.EOT_ID,
              "eos_token_id": zoo.EOT_ID, "pad_token_id": zoo.PAD_ID,
              "word_embed_proj_dim": 32 if spec.config["word_embed_proj_dim"] != spec.config[
                  "hidden_size"] else 64}
    cfg = transformers.OPTConfig(**{**spec.config, **narrow})
    path = tmp_path / f"{panel}-narrow"
    torch.manual_seed(0)
    transformers.OPTForCausalLM(cfg).save_pretrained(path)
    zoo.tokenizer().to_transformers().save_pretrained(path)
    config = dataclasses.replace(TINY, memory_models=((panel, str(path)),), methods=("lora",))
    (case,) = memory_cases(config)
    assert case.model == str(path) and case.figure == f"exp-overall-memory-{panel}"
    r = measure_memory(case, config, Timer(None, "cpu"))
    loaded = setups.base_model(str(path)).config
    assert loaded.do_layer_norm_before == spec.config["do_layer_norm_before"]
    assert (loaded.word_embed_proj_dim != loaded.hidden_size) == (
        spec.config["word_embed_proj_dim"] != spec.config["hidden_size"])  # project_in / out
    _check_lora_totals(r, loaded)
    assert 0 < r["oracle_density_attn"] < 1  # the packed documents reached the exposer


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_measure_memory_cuda_peak():
    """On CUDA each mode also records the allocator's peak over a whole step
    (torch.cuda.max_memory_allocated), which holds the saved activations at its peak (half of
    them: the batch, saved by the embedding, was allocated before the step). Not run here (no
    GPU in this session)."""
    (case,) = [c for c in memory_cases(TINY) if c.method == "lora"]
    r = measure_memory(case, TINY, Timer(None, "cuda"))
    for mode in MEMORY_MODES:
        assert r[f"{mode}_cuda_peak"] >= r[f"{mode}_activations"] * 0.5, mode
