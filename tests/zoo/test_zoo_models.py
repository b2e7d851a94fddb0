"""Model specs: every tiny spec builds and runs; paper path through a local directory; errors.

    pytest tests/zoo/test_zoo_models.py -q
"""

import time

import pytest
import torch

from benchlab import zoo
from benchlab.core.errors import BenchlabError


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty hub cache
    with zoo.offline():
        yield


@pytest.mark.parametrize("name", zoo.names("tiny"))
def test_tiny_spec_builds_and_runs_forward(name):
    t0 = time.perf_counter()
    model = zoo.build(name)
    seconds = time.perf_counter() - t0
    print(f"{name}: built in {seconds:.2f}s, {model.num_parameters() / 1e6:.2f}M parameters")
    ids = torch.randint(0, zoo.VOCAB_SIZE, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert logits.shape == (2, 16, zoo.VOCAB_SIZE)
    assert torch.isfinite(logits).all()
    assert not model.training and next(model.parameters()).dtype == torch.float32


def test_small_and_tiny_specs_use_the_zoo_tokenizer():
    vocab = zoo.tokenizer("bpe").vocab_size
    for name in zoo.names("tiny") + zoo.names("small"):
        assert zoo.hf_config(name).vocab_size == vocab, name


def test_build_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a, b, c = (zoo.build("gpt2-tiny", seed=s) for s in (0, 0, 1))
    assert torch.equal(torch.rand(3), expected)
    wa, wb, wc = (m.transformer.h[0].attn.c_attn.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_olmoe_tiny_routes_like_olmoe():
    cfg = zoo.hf_config("olmoe-tiny")
    paper = zoo.hf_config("olmoe-1b-7b")
    for key in ("num_experts", "num_experts_per_tok", "norm_topk_prob"):
        assert getattr(cfg, key) == getattr(paper, key)
    assert (cfg.num_experts, cfg.num_experts_per_tok, cfg.norm_topk_prob) == (64, 8, False)
    model = zoo.build("olmoe-tiny")
    router = model.model.layers[0].mlp.gate
    x = torch.randn(5, cfg.hidden_size)
    logits, scores, idx = router(x)
    probs = torch.softmax(logits, -1)
    assert idx.shape == (5, 8)
    torch.testing.assert_close(scores, probs.gather(-1, idx))  # softmax over all 64, no renorm


def test_opt_tiny_is_relu_and_takes_1024_tokens():
    cfg = zoo.hf_config("opt-tiny")
    assert cfg.activation_function == "relu" and cfg.max_position_embeddings >= 1024
    with torch.no_grad():
        out = zoo.build("opt-tiny")(input_ids=torch.zeros(1, 1024, dtype=torch.long)).logits
    assert out.shape == (1, 1024, zoo.VOCAB_SIZE)


def test_paper_specs_name_the_published_checkpoints():
    hub = {n: zoo.spec(n).hub_id for n in zoo.names("paper")}
    assert hub == {
        "opt-125m": "facebook/opt-125m", "opt-350m": "facebook/opt-350m",
        "opt-1.3b": "facebook/opt-1.3b", "opt-2.7b": "facebook/opt-2.7b",
        "olmoe-1b-7b": "allenai/OLMoE-1B-7B-0924", "llama2-7b": "meta-llama/Llama-2-7b-hf",
        "gpt2": "gpt2", "gpt2-large": "openai-community/gpt2-large",
        "gpt2-xl": "openai-community/gpt2-xl"}
    for name, shape in {"gpt2-large": (1280, 36, 20), "gpt2-xl": (1600, 48, 25)}.items():
        c = zoo.hf_config(name)  # the published config.json's n_embd, n_layer, n_head
        assert (c.n_embd, c.n_layer, c.n_head) == shape
    assert zoo.hf_config("opt-125m").ffn_dim == 3072
    assert zoo.hf_config("llama2-7b").intermediate_size == 11008
    small = zoo.hf_config("opt-125m-shape")  # same shape as OPT-125m, zoo vocabulary
    for key in ("hidden_size", "ffn_dim", "num_hidden_layers", "num_attention_heads"):
        assert getattr(small, key) == getattr(zoo.hf_config("opt-125m"), key)


@pytest.mark.parametrize("name", zoo.names("tiny"))
def test_local_directory_round_trip_gives_identical_logits(name, tmp_path):
    model = zoo.build(name, seed=3)
    model.save_pretrained(tmp_path / name)
    loaded = zoo.load(tmp_path / name)
    assert type(loaded) is type(model)
    ids = torch.randint(0, zoo.VOCAB_SIZE, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, loaded(input_ids=ids).logits)
    half = zoo.load(str(tmp_path / name), dtype=torch.bfloat16)
    assert next(half.parameters()).dtype == torch.bfloat16


@pytest.mark.parametrize("target", ["opt-125m", "facebook/opt-350m", "nobody/no-such-model"])
def test_hub_id_offline_gives_one_line_error(target):
    with pytest.raises(BenchlabError) as info:
        zoo.load(target)
    message = str(info.value)
    assert "\n" not in message
    assert "hf download" in message and "offline" in message
    assert info.value.__suppress_context__  # raised `from None`: no chained traceback


def test_unknown_spec_name_says_did_you_mean():
    with pytest.raises(BenchlabError, match="did you mean 'opt-tiny'"):
        zoo.spec("opt-tinny")
    with pytest.raises(BenchlabError, match="not a model directory"):
        zoo.load(__file__)


def test_trained_refuses_paper_specs():
    with pytest.raises(BenchlabError, match="load"):
        zoo.trained("opt-125m")


def test_a_new_spec_leaves_code_versions_and_other_records_inputs_alone(tmp_path):
    """zoo/specs.py is data: its bytes are not in any code version, and a record depends on the
    spec it ran on through its inputs ("spec:<name>"), so a new spec makes no other result stale."""
    import shutil

    from benchlab.core import provenance
    from benchlab.zoo import models, specs

    root = tmp_path / "benchlab"
    shutil.copytree(provenance.PACKAGE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    exp = root / "moe_routing" / "__init__.py"

    def version():
        provenance._hash_sources.cache_clear()
        return provenance.code_version(str(exp))

    old = provenance.PACKAGE_ROOT
    try:
        provenance.PACKAGE_ROOT = root
        before = version()
        with open(root / "zoo" / "specs.py", "a") as f:
            f.write('\n_add("opt-new", "opt", "tiny", hidden_size=64)\n')
        assert version() == before
        (root / "zoo" / "models.py").write_text("# an edit to zoo code\n", "utf-8")
        assert version() != before  # the rest of the zoo is code
    finally:
        provenance.PACKAGE_ROOT = old
        provenance._hash_sources.cache_clear()

    inputs = models.artifact_inputs("opt-tiny")
    assert inputs["spec:opt-tiny"] == provenance.config_hash(specs.MODELS.get("opt-tiny"))
    assert set(inputs) == {"spec:opt-tiny", "model:opt-tiny", "tokenizer", "corpus"}
    specs.MODELS.add("opt-new", specs.ModelSpec("opt-new", "opt", {"hidden_size": 64}))
    try:
        assert models.artifact_inputs("opt-tiny") == inputs
        assert models.artifact_inputs("opt-new")["spec:opt-new"] != inputs["spec:opt-tiny"]
    finally:
        specs.MODELS._items.pop("opt-new", None)
