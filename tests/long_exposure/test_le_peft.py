"""PEFT baselines train only what they should: parameter counts, gradients, attention backends."""

import copy

import pytest
import torch

from benchlab import zoo
from benchlab.core.errors import BenchlabError
from benchlab.long_exposure import patch as P
from benchlab.long_exposure import peft_methods as pm


@pytest.fixture(scope="module")
def base():
    return pm.disable_dropout(zoo.build("opt-tiny"))


def fresh(base, method):
    import copy

    return pm.apply_method(copy.deepcopy(base), method)


@pytest.mark.parametrize("method", pm.METHODS)
def test_trainable_count_matches_formula(base, method):
    model = fresh(base, method)
    trainable, total = pm.param_counts(model)
    _, base_total = pm.param_counts(base)
    assert trainable == pm.expected_trainable(base.config, method, total=base_total)
    assert total == base_total + (trainable if method in ("lora", "adapter", "prefix") else 0)


def test_lora_matches_peft_own_count_and_config(base):
    model = fresh(base, "lora")
    trainable, total = model.get_nb_trainable_parameters()
    assert (trainable, total) == pm.param_counts(model)
    cfg = model.peft_config["default"]
    assert (cfg.r, cfg.lora_alpha, sorted(cfg.target_modules)) == (4, 32, ["q_proj", "v_proj"])
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n and ("q_proj" in n or "v_proj" in n) for n in names)


def test_bitfit_trains_biases_only(base):
    model = fresh(base, "bitfit")
    for name, p in model.named_parameters():
        assert p.requires_grad == name.endswith(".bias"), name


@pytest.mark.parametrize("method,mode", [(m, mode) for mode in ("sdpa", "le") for m in pm.METHODS
                                         if (m, mode) != ("prefix", "le")])  # patch: no prefix
def test_gradients_only_where_trainable(base, method, mode):
    model = fresh(base, method)
    if mode == "le":
        P.patch(model, P.KeepAll(4, 512, 64))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x = torch.randint(2, zoo.VOCAB_SIZE, (1, 64))
    model.train()
    model(input_ids=x, labels=x).loss.backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name
        if p.grad is not None and not name.endswith("adapter.down.weight") and \
                not name.endswith("adapter.down.bias") and "lora_A" not in name:
            assert p.grad.abs().sum() > 0, name  # zero-init partners give zero grad at step 0
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    opt.step()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, before[name]), name


def test_adapter_starts_as_identity(base):
    x = torch.randint(2, zoo.VOCAB_SIZE, (1, 32))
    with torch.no_grad():
        torch.testing.assert_close(fresh(base, "adapter")(x).logits, base(x).logits)


def test_eager_and_sdpa_agree(base):
    import copy

    x = torch.randint(2, zoo.VOCAB_SIZE, (2, 48))
    eager = pm.set_attention(copy.deepcopy(base), "eager")
    sdpa = pm.set_attention(copy.deepcopy(base), "sdpa")
    assert eager.config._attn_implementation == "eager"
    with torch.no_grad():
        torch.testing.assert_close(eager(x).logits, sdpa(x).logits, atol=1e-4, rtol=1e-4)


def test_bad_names_raise(base):
    with pytest.raises(BenchlabError, match="method"):
        pm.apply_method(base, "prompt")
    with pytest.raises(BenchlabError, match="attn_implementation"):
        pm.set_attention(base, "flash")


def test_prefix_matches_peft_own_count_and_config(base):
    model = fresh(base, "prefix")
    assert pm.is_prefix(model) and not pm.is_prefix(fresh(base, "lora"))
    trainable, total = model.get_nb_trainable_parameters()
    assert (trainable, total) == pm.param_counts(model)
    assert trainable == pm.expected_trainable(base.config, "prefix") == 16 * 4 * 2 * 128  # P L 2 C
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names == ["prompt_encoder.default.embedding.weight"]
    with pytest.raises(BenchlabError, match="already applied"):
        pm.attend_in_documents(pm.attend_in_documents(model))
    with pytest.raises(BenchlabError, match="prefix-tuning models"):
        pm.attend_in_documents(fresh(base, "lora"))


def packed(eos, lengths, seed=0):
    """One packed row: documents of `lengths` random tokens, each followed by `eos`."""
    g = torch.Generator().manual_seed(seed)
    row = []
    for n in lengths:
        row += torch.randint(2, zoo.VOCAB_SIZE, (n,), generator=g).tolist() + [eos]
    return torch.tensor([row])


@pytest.mark.parametrize("impl", pm.ATTN_IMPLS)
def test_prefix_attention_is_the_prefix_plus_the_document(base, impl):
    """Each document of a packed row gets the logits Hugging Face's own prefix attention gives
    it alone (the prefix, then causal), at the same positions; the prefix changes them."""
    import copy

    model = fresh(base, "prefix")
    with torch.no_grad():
        model.prompt_encoder["default"].embedding.weight.normal_(0, 2.0)
    eos = base.config.eos_token_id
    x = packed(eos, [9, 14, 6, 20])
    docs = pm.attend_in_documents(pm.set_attention(copy.deepcopy(model), impl))
    model.eval()
    docs.eval()
    with torch.no_grad():
        got = docs(input_ids=x).logits[0]
        start = 0
        for n in [9, 14, 6, 20]:
            ids = x[:, start:start + n + 1]
            pos = torch.arange(start, start + n + 1)[None]  # peft adds P to position ids
            want = pm.set_attention(model, impl)(input_ids=ids, position_ids=pos).logits[0]
            torch.testing.assert_close(got[start:start + n + 1], want, atol=1e-4, rtol=1e-4)
            start += n + 1
        assert not torch.allclose(got[-5:], base(x).logits[0, -5:], atol=1e-2)


def prefix_trainer(mode, data):
    from benchlab.long_exposure import CONFIGS, setups

    return setups.trainer(CONFIGS["tiny"], "opt-tiny", "prefix", data.shape[1], mode=mode,
                          data=data, init="random")


@pytest.mark.parametrize("mode", pm.ATTN_IMPLS)
def test_prefix_training_lowers_loss_and_changes_only_the_prefix(base, mode):
    data = torch.cat([packed(base.config.eos_token_id, [20, 30, 13], seed=s) for s in (1, 2)])
    t = prefix_trainer(mode, data)
    before = {n: p.detach().clone() for n, p in t.model.named_parameters()}
    losses = [t.step() for _ in range(8)]
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses
    for name, p in t.model.named_parameters():
        changed = not torch.equal(p, before[name])
        assert changed == (name == "prompt_encoder.default.embedding.weight"), name


@pytest.mark.parametrize("mode", ["le", "le_flex", "sdpa_docs", "sdpa_causal", "flex"])
def test_prefix_refuses_modes_without_prefix_keys(mode):
    with pytest.raises(BenchlabError, match=rf"mode: '{mode}' cannot run prefix tuning"):
        prefix_trainer(mode, packed(0, [30, 33]))


def test_patch_refuses_a_prefix_model(base):
    """Patched layers have no prefix keys: patching a prefix model is an error, not a silent
    drop of the prefix."""
    from benchlab.long_exposure import patch as P

    model = pm.apply_method(copy.deepcopy(base), "prefix")
    with pytest.raises(BenchlabError, match="prefix tuning runs on Hugging Face's attention"):
        P.patch(model, None, attn="sdpa")


def test_prefix_end2end_and_breakdown_are_dense_only():
    """Prefix tuning has no LE mode: its end-to-end case times eager and SDPA only (no t_le,
    no speedups, no densities) and its breakdown dense SDPA only; every scale runs it."""
    import dataclasses

    from benchlab.core import Timer
    from benchlab.long_exposure import CONFIGS, Case, breakdown_cases, end2end_cases
    from benchlab.long_exposure.measure import measure_breakdown, measure_end2end

    for config in CONFIGS.values():
        for cases in (end2end_cases(config), breakdown_cases(config)):
            assert {c.seq_len for c in cases if c.method == "prefix"} == set(config.seq_lens)
    config = dataclasses.replace(CONFIGS["tiny"], rounds=1, warmup=0)
    r = measure_end2end(Case("p", "end2end", "opt-tiny", 128, "prefix"), config, Timer())
    assert r["t_sdpa"] > 0 and r["t_eager"] > 0 and r["tokens"] == 128
    assert not [k for k in r if k == "t_le" or k.startswith(("speedup", "density", "keeps"))]
    b = measure_breakdown(Case("p", "breakdown", "opt-tiny", 128, "prefix"), config, Timer())
    assert b["dense_step"] > 0 and b["dense_predictor"] == 0
    assert not [k for k in b if k.startswith("le_") or k in ("speedup", "predictor_share")]
