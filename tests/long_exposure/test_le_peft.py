"""PEFT baselines train only what they should: parameter counts, gradients, attention backends."""

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
    assert total == base_total + (trainable if method in ("lora", "adapter") else 0)


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


@pytest.mark.parametrize("mode", ["sdpa", "le"])
@pytest.mark.parametrize("method", pm.METHODS)
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
        pm.apply_method(base, "prefix")
    with pytest.raises(BenchlabError, match="attn_implementation"):
        pm.set_attention(base, "flash")
