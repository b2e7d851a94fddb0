"""GPT-2 under patch.py: packed rows attend only inside their documents in every mode, checked
against Hugging Face's own GPT-2 run on each document alone (float64, at the same positions);
the GELU MLP runs dense in LE mode unless masks are asked for (then the masked function); the
exposer measures the GELU MLP as it is; peft methods find GPT-2's modules.

    pytest tests/long_exposure/test_le_gpt2.py -q
"""

import copy

import pytest
import torch

from benchlab import zoo
from benchlab.core.errors import BenchlabError
from benchlab.long_exposure import exposer as ex
from benchlab.long_exposure import ops_mlp
from benchlab.long_exposure import patch as P
from benchlab.long_exposure import peft_methods as pm

EOS = zoo.EOT_ID
L = 128
ENDS = (37, 60, 101)  # documents [0, 38), [38, 61), [61, 102), [102, 128)
SPANS = list(zip((0, 38, 61, 102), (38, 61, 102, L), strict=True))


def packed_row(seed=0, batch=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, zoo.VOCAB_SIZE, (batch, L), generator=g)
    ids[:, list(ENDS)] = EOS
    return ids


def _ffn(cfg):
    return cfg.n_inner or 4 * cfg.n_embd


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return pm.disable_dropout(zoo.build("gpt2-tiny")).double()


def _lora(model):
    """LoRA on c_attn with random B (peft starts B at zero, which would zero A's gradients)."""
    m = pm.apply_method(copy.deepcopy(model), "lora")
    g = torch.Generator().manual_seed(3)
    for n, p in m.named_parameters():
        if "lora_B" in n:
            p.data.copy_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return m


def _patch(m, mode):
    cfg = (m.get_base_model() if hasattr(m, "get_base_model") else m).config
    keep_all = P.KeepAll(cfg.n_head, _ffn(cfg), 64)
    if mode in ("eager", "sdpa", "sdpa_docs"):
        return P.patch(m, None, attn=mode)
    if mode == "le_keepall":  # dense GELU MLP (the default for GPT-2)
        return P.patch(m, keep_all)
    if mode == "le_keepall_mlp":  # the masked GELU MLP path with every block kept
        return P.patch(m, keep_all, sparse_mlp=True)
    if mode == "le_random":  # sources that ignore documents: patch must cut them
        return P.patch(m, P.RandomMasks(cfg.n_head, _ffn(cfg), 64, 1.0, 1.0), sparse_mlp=True)
    raise AssertionError(mode)


MODES = ("eager", "sdpa", "sdpa_docs", "le_keepall", "le_keepall_mlp")


@pytest.mark.parametrize("mode", MODES)
def test_each_document_equals_hf_gpt2_run_alone(model, mode):
    """Logits and LoRA gradients of every document equal HF's unpatched GPT-2 (with the same
    LoRA weights) run on that document alone at the same positions, in float64."""
    ids = packed_row()
    m = _lora(model)
    ref_model = copy.deepcopy(m)
    stats = _patch(m, mode)
    out = m(input_ids=ids).logits
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    (out * g).sum().backward()
    got = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    assert got and all("lora_" in n for n in got)
    for s, e in SPANS:
        ref = ref_model(input_ids=ids[:, s:e], position_ids=torch.arange(s, e)[None]).logits
        torch.testing.assert_close(out[:, s:e], ref.detach(), atol=1e-10, rtol=1e-10)
        (ref * g[:, s:e]).sum().backward()
    for n, p in ref_model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(got[n], p.grad, atol=1e-10, rtol=1e-9, msg=n)
    if mode.startswith("le"):
        assert stats.density("mlp") == 1.0 and stats.keeps_everything()


@pytest.mark.parametrize("method", ("adapter", "bitfit", "full"))
def test_le_mode_equals_hf_for_other_methods(model, method):
    """Adapter (random up weights), BitFit and full fine-tuning: LE keep-all logits and the
    trainable gradients equal HF's GPT-2 run per document."""
    m = pm.apply_method(copy.deepcopy(model), method)
    for n, p in m.named_parameters():
        if "adapter.up" in n:
            p.data.normal_(0, 0.1, generator=torch.Generator().manual_seed(5))
    ref_model = copy.deepcopy(m)
    _patch(m, "le_keepall_mlp")
    ids = packed_row(1)
    out = m(input_ids=ids).logits
    out.square().mean().backward()
    loss = 0
    for s, e in SPANS:
        ref = ref_model(input_ids=ids[:, s:e], position_ids=torch.arange(s, e)[None]).logits
        torch.testing.assert_close(out[:, s:e], ref.detach(), atol=1e-10, rtol=1e-10)
        loss = loss + ref.square().sum() / out.numel()
    loss.backward()
    for (n, p), (_, q) in zip(m.named_parameters(), ref_model.named_parameters(), strict=True):
        if p.requires_grad:
            torch.testing.assert_close(p.grad, q.grad, atol=1e-10, rtol=1e-8, msg=n)


@pytest.mark.parametrize("mode", (*MODES, "le_random"))
def test_no_token_attends_outside_its_document(model, mode):
    m = copy.deepcopy(model)
    _patch(m, mode)
    ids = packed_row()
    other = ids.clone()
    other[0, :ENDS[0]] = torch.randint(2, zoo.VOCAB_SIZE, (ENDS[0],),
                                       generator=torch.Generator().manual_seed(99))
    with torch.no_grad():
        a, b = m(input_ids=ids).logits, m(input_ids=other).logits
    assert not torch.allclose(a[:, :ENDS[0]], b[:, :ENDS[0]])  # document 0 did change
    assert float((a[:, ENDS[0] + 1:] - b[:, ENDS[0] + 1:]).abs().max()) < 1e-12
    if mode == "sdpa":  # and the check can fail: HF's own GPT-2 on the packed row leaks
        with torch.no_grad():
            a, b = model(input_ids=ids).logits, model(input_ids=other).logits
        assert float((a[:, ENDS[0] + 1:] - b[:, ENDS[0] + 1:]).abs().max()) > 1e-3


def test_masked_gelu_mlp_is_the_masked_function(model):
    """With sparse_mlp=True and random blocks, the GELU MLP equals the dense MLP with dropped
    neurons zeroed after the GELU (an approximation: not the dense MLP)."""
    layer = pm.decoder_layers(model)[0]
    p = pm.parts(layer)
    h = torch.randn(2, 32, model.config.n_embd, dtype=torch.float64)
    keep = ops_mlp.random_keep(_ffn(model.config) // 64, 0.5, batch=2,
                               generator=torch.Generator().manual_seed(0))
    got = P._mlp(p, h, keep, 64)
    mask = ops_mlp.neuron_mask(keep, 64)[:, None].to(h.dtype)
    want = p.fc2(p.act(p.fc1(h)) * mask)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
    assert not torch.allclose(got, p.fc2(p.act(p.fc1(h))), atol=1e-6)


def test_le_mode_with_exposed_masks_trains():
    """The exposer's block masks of a batch (attention sparse, GELU MLP dense): LoRA training
    in LE mode lowers the loss, and the run is sparser than the documents alone."""
    torch.manual_seed(0)
    model = pm.disable_dropout(zoo.trained("gpt2-tiny"))
    ids = packed_row(2, batch=2)
    exp = ex.expose(model, ids)
    m = pm.apply_method(model, "lora")
    stats = P.patch(m, P.Fixed([x.attn_block_mask for x in exp.layers],
                               [x.mlp_seq_mask for x in exp.layers]))
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(5):
        loss = m(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05, losses
    assert stats.density("attn") < stats.density("doc") and stats.density("mlp") == 1.0


def test_exposer_measures_the_gelu_mlp_as_it_is():
    """GELU is never exactly zero (mlp_nonzero 1), so only the |act| rule says what is active:
    a density strictly between 0 and 1 on the trained tiny GPT-2."""
    model = zoo.trained("gpt2-tiny")
    s = ex.expose(model, packed_row(4, batch=2)).summary()
    assert s["mlp_nonzero"] > 0.99
    assert 0.05 < s["mlp_neuron_token"] < 0.95
    assert 0 < s["mlp_token"] <= 1 and 0 < s["attn_block"] <= s["attn_doc"] <= 1


def test_mlp_activity_of_the_gpt2_records():
    """What measure_gpt2 records about the dense GELU MLP (setups.mlp_activity) is the
    activity of the trained model on the step's batch, recomputed here from c_proj's input
    (the GELU output) of a document-masked forward: per-token neuron density, per-sequence union
    per neuron and per 64-neuron block, per layer and as the mean over layers."""
    from benchlab.long_exposure import CONFIGS, setups

    config, name = CONFIGS["tiny"], "gpt2-tiny"
    L = config.scale_seq_len
    got = setups.mlp_activity(config, name, L)
    m = copy.deepcopy(setups.base_model(name)).eval()
    P.patch(m, None, attn="sdpa")
    acts = []
    hooks = [blk.mlp.c_proj.register_forward_hook(lambda mod, inp, out: acts.append(inp[0]))
             for blk in m.transformer.h]
    with torch.no_grad():
        m(input_ids=setups.batch(config, name, L))
    for h in hooks:
        h.remove()
    rel = config.ops.mlp_rel
    want = {k: [] for k in setups.MLP_ACTIVITY}
    for a in acts:  # (B, L, F)
        on = a.abs() > rel * a.abs().amax(-1, keepdim=True)
        blocks = on.view(*on.shape[:2], -1, setups.MLP_BLOCK).any(-1)
        want["mlp_neuron_token"].append(on.float().mean().item())
        want["mlp_neuron_seq_union"].append(on.any(1).float().mean().item())
        want["mlp_token"].append(blocks.float().mean().item())
        want["mlp_seq_union"].append(blocks.any(1).float().mean().item())
    for k, v in want.items():
        assert got[k] == pytest.approx(v, abs=1e-6), k
        assert got[f"{k}_mean"] == pytest.approx(sum(v) / len(v), abs=1e-6), k
    assert 0.05 < got["mlp_neuron_token_mean"] < got["mlp_neuron_seq_union_mean"] <= 1
    assert got["mlp_neuron_seq_union_mean"] <= got["mlp_seq_union_mean"]
    assert setups.mlp_activity(config, name, L) is got  # once per model: cached


@pytest.mark.parametrize("method", ("full", "lora", "adapter", "bitfit"))
def test_peft_counts_on_gpt2(model, method):
    m = pm.apply_method(copy.deepcopy(model), method)
    trainable, total = pm.param_counts(m)
    assert trainable == pm.expected_trainable(model.config, method, total=total)


def test_prefix_and_lora_on_the_mlp_are_refused(model):
    with pytest.raises(BenchlabError, match="prefix tuning runs on OPT only"):
        pm.apply_method(copy.deepcopy(model), "prefix")
    m = pm.apply_method(copy.deepcopy(model), "lora", pm.PeftConfig(lora_targets=("c_fc",)))
    with pytest.raises(BenchlabError, match="no LoRA on the MLP"):
        P.patch(m, P.KeepAll(4, _ffn(model.config), 64), sparse_mlp=True)
    P.patch(m, P.KeepAll(4, _ffn(model.config), 64))  # the dense GELU MLP takes LoRA


def test_paper_gpt2_path_runs_from_a_local_directory(tmp_path):
    """Fig 13 at paper scale loads gpt2-large / gpt2-xl through zoo.load and the checkpoint's own
    tokenizer; the same code path runs here on a GPT-2 saved with save_pretrained (gpt2-large's
    GELU and layout at a reduced width): every method, LE and the dense modes, one step each."""
    import dataclasses

    import transformers

    from benchlab.core import Timer
    from benchlab.long_exposure import CONFIGS, Case, gpt2_cases
    from benchlab.long_exposure.measure import measure_gpt2

    path = tmp_path / "gpt2-large-narrow"
    cfg = transformers.GPT2Config(vocab_size=zoo.VOCAB_SIZE, n_positions=256, n_embd=64,
                                  n_layer=2, n_head=4, activation_function="gelu_new",
                                  eos_token_id=EOS, bos_token_id=EOS)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(path)
    zoo.tokenizer().to_transformers().save_pretrained(path)
    config = dataclasses.replace(CONFIGS["tiny"], gpt2_models=(str(path),), scale_seq_len=128,
                                 rounds=1, warmup=0, n_records=200)
    paper = gpt2_cases(CONFIGS["paper"])
    assert {c.model for c in paper} == {"gpt2-large", "gpt2-xl"}
    assert {c.method for c in paper} == set(CONFIGS["paper"].methods)
    for case in gpt2_cases(config):
        assert isinstance(case, Case) and case.model == str(path)
        r = measure_gpt2(case, config, Timer(None, "cpu"))
        assert r["tokens"] == 128 and r["t_le"] > 0 and r["t_sdpa"] > 0 and r["t_eager"] > 0
        assert 0 < r["density_attn"] < 1  # packed documents: off-document blocks are skipped
        assert 0 < r["mlp_neuron_token_mean"] <= r["mlp_seq_union_mean"] <= 1
