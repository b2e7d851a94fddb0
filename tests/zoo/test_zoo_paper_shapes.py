"""Paper-shaped models in the models-folder layout: resolve, offline load, weights identity, bad
folders, and our routed OLMoE against transformers' own on the same 1-layer OLMoE-shaped weights.

    pytest tests/zoo/test_zoo_paper_shapes.py -q -p no:cacheprovider
"""

import json
import os
import shutil
import time
from pathlib import Path

import pytest
import torch

from benchlab import zoo
from benchlab.core.errors import BenchlabError
from benchlab.zoo import hub, paper, pin

FAST = ("opt-125m", "gpt2")  # ~90 MB each in bfloat16 at 1 layer


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty hub cache
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("BENCHLAB_MODELS", raising=False)
    with zoo.offline():
        yield


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """opt-125m and gpt2 at 1 layer, written once for the module."""
    out = tmp_path_factory.mktemp("models")
    t0 = time.perf_counter()
    assert paper.write_all(out, layers=1, models=FAST, progress=False) == dict.fromkeys(
        FAST, "written")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"paper-shapes {FAST}: {time.perf_counter() - t0:.1f}s, {size / 2**20:.0f} MiB")
    yield out
    shutil.rmtree(out, ignore_errors=True)  # with OLMoE: 1.4 GB that pytest would keep


def stand_in(src: Path, dst: Path, skip=(), config=None) -> Path:
    """A folder linking `src`'s files (but `skip`), optionally with another config.json."""
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.name not in skip and not (config and f.name == "config.json"):
            (dst / f.name).symlink_to(f)
    if config is not None:
        (dst / "config.json").write_text(json.dumps(config))
    return dst


def one_line_error(call) -> str:
    with pytest.raises(BenchlabError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message  # and no chained traceback:
    assert info.value.__suppress_context__ or info.value.__context__ is None
    return message


def test_folders_have_the_published_shape_cut_to_one_layer(root):
    for name in FAST:
        s = zoo.spec(name)
        folder = root / hub.folder_name(s.hub_id)
        config = json.loads((folder / "config.json").read_text())
        assert config["model_type"] == s.family and config["dtype"] == "bfloat16"
        assert config[paper.layers_key(s.family)] == 1
        for key, value in s.config.items():
            if key not in (paper.layers_key(s.family), "dropout"):
                assert config[key] == value, (name, key)
        tok = zoo.load_tokenizer(name, models_dir=root)
        assert len(tok) == s.config["vocab_size"]
        for role in ("bos", "eos", "pad"):
            assert getattr(tok, f"{role}_token_id") == s.config.get(f"{role}_token_id"), role
    assert sorted(p.name for p in root.iterdir()) == ["facebook--opt-125m", "gpt2"]


def test_resolve_finds_the_org_name_layout(root, monkeypatch):
    opt = str(root / "facebook--opt-125m")
    assert hub.resolve("opt-125m", models_dir=root) == opt
    assert hub.resolve("facebook/opt-125m", models_dir=root) == opt
    assert zoo.resolve("gpt2", models_dir=str(root)) == str(root / "gpt2")  # no org: DIR/gpt2/
    assert zoo.resolve(opt) == opt  # a folder given directly
    monkeypatch.setenv("BENCHLAB_MODELS", str(root))
    assert zoo.resolve("opt-125m") == opt
    assert "did you mean" in one_line_error(lambda: zoo.resolve("opt-125n"))
    assert "no hub id" in one_line_error(lambda: zoo.resolve("opt-tiny"))


def test_load_offline_from_the_models_folder(root):
    model = zoo.load("facebook/opt-125m", models_dir=root)
    assert type(model).__name__ == "OPTForCausalLM" and not model.training
    assert next(model.parameters()).dtype == torch.float32  # saved bfloat16, loaded float32
    tok = zoo.load_tokenizer("opt-125m", models_dir=root)
    ids = tok("def f(x): return x", return_tensors="pt")["input_ids"]
    assert ids[0, 0] == 2 and tok.decode(ids[0], skip_special_tokens=True) == "def f(x): return x"
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], 50272) and torch.isfinite(logits).all()
    gpt2 = zoo.load("gpt2", models_dir=root, dtype=torch.bfloat16)
    assert gpt2.config.n_layer == 1 and next(gpt2.parameters()).dtype == torch.bfloat16


def test_rerun_skips_existing_folders_and_leaves_foreign_ones_alone(root, tmp_path, capsys):
    assert pin.main(["paper-shapes", str(root), "--models", *FAST]) == 0
    assert capsys.readouterr().out.split().count("exists") == 2
    foreign = stand_in(root / "gpt2", tmp_path / "m" / "gpt2", skip=(paper.MARKER,))
    before = sorted(os.listdir(foreign))
    assert paper.write_all(tmp_path / "m", models=["gpt2"], progress=False) == {"gpt2": "kept"}
    assert sorted(os.listdir(foreign)) == before


def test_weights_identity_follows_the_weight_and_tokenizer_bytes(root, tmp_path):
    from safetensors.torch import load_file, save_file

    ident = zoo.weights_identity("gpt2", models_dir=root)
    assert set(ident) == {"weights:gpt2", "tokenizer:gpt2"}
    t0 = time.perf_counter()
    for _ in range(100):
        assert zoo.weights_identity("gpt2", models_dir=root) == ident
    assert time.perf_counter() - t0 < 2.0  # cached per file mtime: no rehash
    assert zoo.weights_identity(root / "gpt2") == ident  # the folder itself names the same id

    copy = stand_in(root / "gpt2", tmp_path / "m" / "gpt2", skip=("model.safetensors",))
    state = load_file(root / "gpt2" / "model.safetensors")
    save_file(state, copy / "model.safetensors", metadata={"format": "pt"})
    same = zoo.weights_identity("gpt2", models_dir=tmp_path / "m")
    assert same["tokenizer:gpt2"] == ident["tokenizer:gpt2"]
    os.utime(copy / "model.safetensors", ns=(1, 1))  # touched, same bytes: same identity
    assert zoo.weights_identity("gpt2", models_dir=tmp_path / "m") == same
    key = next(k for k in state if k.endswith("ln_f.bias"))
    state[key] = state[key] + 1
    save_file(state, copy / "model.safetensors", metadata={"format": "pt"})
    changed = zoo.weights_identity("gpt2", models_dir=tmp_path / "m")
    assert changed["weights:gpt2"] != same["weights:gpt2"]
    assert changed["tokenizer:gpt2"] == same["tokenizer:gpt2"]
    (copy / "tokenizer_config.json").unlink()
    (copy / "tokenizer_config.json").write_text("{}")
    assert zoo.weights_identity("gpt2", models_dir=tmp_path / "m")["tokenizer:gpt2"] != \
        same["tokenizer:gpt2"]


def test_hf_cache_snapshot_identity_is_its_commit(root, tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--facebook--opt-1.3b"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    stand_in(root / "facebook--opt-125m", repo / "snapshots" / commit)
    assert zoo.resolve("opt-1.3b") == "facebook/opt-1.3b"  # in the cache: the hub id
    assert zoo.weights_identity("opt-1.3b") == {
        "weights:facebook/opt-1.3b": commit, "tokenizer:facebook/opt-1.3b": commit}


def test_another_architecture_is_a_one_line_error(root, tmp_path):
    bad = stand_in(root / "gpt2", tmp_path / "m" / "facebook--opt-125m")  # GPT-2 as OPT
    message = one_line_error(lambda: zoo.resolve("opt-125m", models_dir=tmp_path / "m"))
    assert message.startswith(f"{bad}: config.json: model_type: 'gpt2', expected 'opt'")
    config = json.loads((root / "facebook--opt-125m" / "config.json").read_text())
    stand_in(root / "facebook--opt-125m", tmp_path / "m" / "facebook--opt-350m", config=config)
    message = one_line_error(lambda: zoo.load("opt-350m", models_dir=tmp_path / "m"))
    assert "facebook--opt-350m: config.json: hidden_size: 768, expected 1024" in message
    deeper = dict(config, num_hidden_layers=3)  # another number of layers is fine
    stand_in(root / "facebook--opt-125m", tmp_path / "n" / "facebook--opt-125m", config=deeper)
    assert zoo.resolve("opt-125m", models_dir=tmp_path / "n").endswith("facebook--opt-125m")


def test_folder_without_tokenizer_is_a_one_line_error(root, tmp_path):
    bare = stand_in(root / "gpt2", tmp_path / "m" / "gpt2",
                    skip=("tokenizer.json", "tokenizer_config.json"))
    for call in (lambda: zoo.resolve("gpt2", models_dir=tmp_path / "m"),
                 lambda: zoo.load("gpt2", models_dir=tmp_path / "m"),
                 lambda: zoo.weights_identity("gpt2", models_dir=tmp_path / "m")):
        assert one_line_error(call).startswith(f"{bare}: tokenizer: no tokenizer files")


def test_absent_weights_offline_name_the_hub_id_and_the_folder(root, monkeypatch):
    expected = root / "facebook--opt-1.3b"
    for call in (lambda: zoo.resolve("opt-1.3b", models_dir=root),
                 lambda: zoo.load("facebook/opt-1.3b", models_dir=root),
                 lambda: zoo.load_tokenizer("opt-1.3b", models_dir=root),
                 lambda: zoo.weights_identity("opt-1.3b", models_dir=root)):
        message = one_line_error(call)
        assert message.startswith("facebook/opt-1.3b: weights not available offline")
        assert f"no folder {expected}" in message and "hf download" in message
    assert "BENCHLAB_MODELS=DIR with DIR/facebook--opt-1.3b/" in one_line_error(
        lambda: zoo.load("opt-1.3b"))


@pytest.fixture(scope="module")
def olmoe(root):
    """allenai/OLMoE-1B-7B-0924 at 1 layer (626M parameters, 1.2 GB in bfloat16; ~20 s)."""
    assert paper.write_one("olmoe-1b-7b", root, layers=1) == "written"
    return root / "allenai--OLMoE-1B-7B-0924"


def test_routed_top8_matches_transformers_olmoe_on_paper_shaped_weights(olmoe, root):
    """moe_routing's RoutedMoeBlock at topk_8 (softmax over all 64, no renormalization, grouped
    expert dispatch) gives OlmoeForCausalLM's own logits on the same weights: max abs diff
    within 1e-5 (float32; the logits are O(1))."""
    from benchlab.moe_routing.model import RoutedMoeBlock, apply_routing

    model = zoo.load("olmoe-1b-7b", models_dir=root)
    assert type(model).__name__ == "OlmoeForCausalLM" and model.config.num_hidden_layers == 1
    tok = zoo.load_tokenizer("olmoe-1b-7b", models_dir=root)
    assert len(tok) == 50304 and tok.eos_token_id == 50279 and tok.pad_token_id == 1
    ids = tok("The quick brown fox jumps over the lazy dog; def f(x): return x",
              return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        apply_routing(model, "topk_8")
        assert isinstance(model.model.layers[0].mlp, RoutedMoeBlock)
        got = model(input_ids=ids).logits
    diff = (got - expected).abs().max().item()
    print(f"routed top-8 vs OlmoeForCausalLM: max |diff| {diff:.2e}, "
          f"max |logit| {expected.abs().max().item():.2f}")
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
