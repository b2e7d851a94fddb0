"""Trained tiny models: the cache (hit, corruption, concurrency) and what training changed.

    pytest tests/zoo/test_zoo_train.py -q -s    # -s prints before/after statistics

The cache tests train 3-step models in a private cache dir; the effect tests use the real cache
($BENCHLAB_CACHE), so the first run trains each tiny model once (about a minute each).
"""

import json
import shutil
import threading

import pytest
import torch

from benchlab import zoo
from benchlab.zoo import data, probes, train
from benchlab.zoo.cache import zoo_version


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """An empty model cache, seeded with the (expensive) tokenizer and corpus of the real one."""
    zoo.tokenizer("bpe"), zoo.corpus_tokens("train"), zoo.corpus_tokens("val")
    src = zoo.cache_dir() / "zoo"
    (tmp_path / "zoo").mkdir()
    for path in src.glob(f"*{zoo_version()}*"):
        if not path.name.endswith(".lock"):
            shutil.copy(path, tmp_path / "zoo" / path.name)
    monkeypatch.setenv("BENCHLAB_CACHE", str(tmp_path))
    return tmp_path


def runs(name):
    return train.TRAINING_RUNS.count(name)


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_second_request_is_served_from_the_cache(private_cache):
    before = runs("gpt2-tiny")
    first = zoo.trained("gpt2-tiny", steps=3)
    assert runs("gpt2-tiny") == before + 1
    path = train.cache_path("gpt2-tiny", 3)
    assert path.is_relative_to(private_cache) and path.exists()
    second = zoo.trained("gpt2-tiny", steps=3)
    assert runs("gpt2-tiny") == before + 1  # no retraining
    assert same_weights(first, second) and not second.training
    other = zoo.trained("gpt2-tiny", steps=3, seed=1)  # another key: trained again
    assert runs("gpt2-tiny") == before + 2 and not same_weights(first, other)
    stats = zoo.train_stats("gpt2-tiny", steps=3)
    assert stats["train"]["steps"] == 3 and stats["zoo_version"] == zoo_version()


def _flip(path):
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-100])


def _header(path):
    raw = bytearray(path.read_bytes())
    raw[8:16] = b"{garbage"
    path.write_bytes(bytes(raw))


def _sidecar_gone(path):
    path.with_suffix(".json").unlink()


def _sidecar_garbage(path):
    path.with_suffix(".json").write_text("{not json")


@pytest.mark.parametrize("damage", [_flip, _truncate, _header, _sidecar_gone, _sidecar_garbage],
                         ids=["flipped-byte", "truncated", "bad-header", "no-sidecar",
                              "bad-sidecar"])
def test_corrupted_cache_is_detected_and_rebuilt(private_cache, damage, capsys):
    model = zoo.trained("llama-tiny", steps=3)
    path = train.cache_path("llama-tiny", 3)
    n = runs("llama-tiny")
    damage(path)
    rebuilt = zoo.trained("llama-tiny", steps=3)
    assert runs("llama-tiny") == n + 1  # retrained, not silently loaded
    assert "unusable" in capsys.readouterr().err
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["sha256"] and path.stat().st_size == meta["bytes"]
    sa, sb = model.state_dict(), rebuilt.state_dict()  # same seed: same training
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], atol=1e-4, rtol=1e-3)
    zoo.trained("llama-tiny", steps=3)
    assert runs("llama-tiny") == n + 1


def test_concurrent_requests_train_once(private_cache):
    n = runs("opt-tiny")
    results = [None, None]

    def worker(i):
        results[i] = zoo.trained("opt-tiny", steps=2)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert runs("opt-tiny") == n + 1
    assert same_weights(*results)
    assert not list(train.cache_path("opt-tiny", 2).parent.glob("*.tmp"))  # no temp files left


# ---- what training changed (real cache: trains once, then reuses) ----
@pytest.fixture(scope="module")
def val_ids():
    return data.fixed_batches(zoo.corpus_tokens("val"), 1, 8, 128, seed=99)[0]


def test_training_lowers_validation_loss_well_below_random(val_ids, capsys):
    for name in zoo.names("tiny"):
        random, trained = zoo.build(name), zoo.trained(name)
        loss_random = probes.val_loss(random, val_ids[None])
        loss_trained = probes.val_loss(trained, val_ids[None])
        with capsys.disabled():
            print(f"\n{name}: val loss random {loss_random:.2f} -> trained {loss_trained:.2f}")
        assert loss_random > 0.95 * torch.log(torch.tensor(zoo.VOCAB_SIZE)).item()
        assert loss_trained < loss_random - 2.0  # nats: > 7x lower perplexity


def test_training_sharpens_the_moe_routers(val_ids, capsys):
    ids = val_ids[:, :-1]
    h_random = probes.router_entropy(zoo.build("olmoe-tiny"), ids)
    h_trained = probes.router_entropy(zoo.trained("olmoe-tiny"), ids)
    with capsys.disabled():
        print(f"\nolmoe-tiny router entropy (nats, uniform = 4.16): {h_random:.2f} -> "
              f"{h_trained:.2f}")
    assert h_random > 0.97 * torch.log(torch.tensor(64.0)).item()  # random: near uniform
    assert h_trained < h_random - 0.4  # measured: 4.13 -> 3.45 nats (sidecar, 300 steps)


def test_training_makes_relus_sparser(val_ids, capsys):
    ids = val_ids[:, :-1]
    s_random = probes.relu_sparsity(zoo.build("opt-tiny"), ids)
    s_trained = probes.relu_sparsity(zoo.trained("opt-tiny"), ids)
    with capsys.disabled():
        print(f"\nopt-tiny ReLU sparsity: {s_random:.3f} -> {s_trained:.3f}")
    assert 0.4 < s_random < 0.6  # random init: about half
    assert s_trained > s_random + 0.1


def test_load_of_a_tiny_spec_is_the_trained_model():
    assert same_weights(zoo.load("gpt2-tiny"), zoo.trained("gpt2-tiny"))


# ---- the pinned artifacts stay reproducible from the project's own code ----
def test_a_few_training_steps_reproduce_bit_for_bit():
    cfg = train.train_config("gpt2-tiny", steps=4)
    a, stats_a = train.train_model("gpt2-tiny", cfg, seed=0, threads=1)
    b, stats_b = train.train_model("gpt2-tiny", cfg, seed=0, threads=1)
    assert same_weights(a, b) and stats_a["after"] == stats_b["after"]
    assert not same_weights(a, zoo.build("gpt2-tiny"))  # the steps did change the weights


# What a rebuild promises. Training in float32 is bit-reproducible on one machine (the test above)
# but not across CPU kernels (AVX-512 vs AVX2, MKL vs OpenBLAS paths): after 300 steps the
# trajectories have diverged as two seeds would, and the rebuilt model's validation loss differs
# from the shipped one's by 0.056 (one AMD EPYC) to 0.146 nats (another) out of a 3.5-nat drop.
# The promise is the recipe's, not the bits': a rebuild learns as much as the shipped model did,
# within REBUILD_SHARE of its loss drop from the untrained model. Results always use the shipped
# artifacts (sha256-checked), never a rebuild.
REBUILD_SHARE = 0.10


def test_rebuilt_model_learns_as_much_as_the_shipped_one(capsys):
    """`benchlab zoo pin --models` on another machine trains another model of the same recipe:
    its validation-loss drop from the untrained model is within REBUILD_SHARE of the shipped
    one's; the shipped weights evaluated here give the manifest's loss (the same bytes)."""
    from benchlab.zoo import manifest, probes

    name = "gpt2-tiny"  # the quickest of the four (about a minute on one thread)
    entry = manifest.manifest()["training"][name]
    before, shipped = entry["before"]["val_loss"], entry["after"]["val_loss"]
    here = probes.summary(zoo.trained(name))["val_loss"]
    rebuilt, stats = train.train_model(name, train.train_config(name), seed=0, threads=1)
    got = stats["after"]["val_loss"]
    with capsys.disabled():
        print(f"\n{name} val loss: untrained {before:.5f}, manifest {shipped:.5f}, shipped weights "
              f"here {here:.5f}, rebuilt here {got:.5f} "
              f"({(before - got) / (before - shipped):.3f} of the shipped drop)")
    assert abs(here - shipped) < 1e-3  # the same weights, evaluated on another machine
    assert abs(stats["before"]["val_loss"] - before) < 1e-3  # the same untrained model
    assert abs(got - shipped) <= REBUILD_SHARE * (before - shipped)
