"""Training: configs and overrides, schedule, bit-for-bit reproducibility, checkpoints and resume,
DDP (2 gloo processes) against one process with the same global batch."""

import dataclasses
import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from benchlab.core import ddp
from benchlab.core.errors import BenchlabError
from benchlab.sublora import config as C
from benchlab.sublora import train as T
from benchlab.sublora.data import get_batch, load_corpus

FAST = ["--model.init_from=scratch", "--data.batch_size=2", "--data.block_size=16",
        "--training.max_iters=4", "--training.eval_interval=2", "--training.eval_iters=1",
        "--learning_rate.warmup_iters=1", "--learning_rate.lr_decay_iters=4",
        "--data.n_documents=1000", "--data.n_val_documents=50"]


def fast(*extra) -> C.RunConfig:
    return C.load(None, FAST + list(extra))


SEED_YAML = """
login:
  wandb_log: True
  out_dir: TOADD
data:
  batch_size: 8
  block_size: 1024
  perturb_word_order_window_size: 0
  dataset_dir: ''
training:
  gradient_accumulation_steps: 40
  max_iters: 600000
  eval_interval: 10
optimizer:
  beta1: 0.9
  learning_rate: 5e-3
  adam_epislon: 1e-06
learning_rate:
  lr_decay_iters: 600000
model:
  n_layer: 4
  apply_rope: False
  init_from: scratch
sublora:
  lora_alpha: 32
  intrinsic_dim: 50000
  allocation_mode: uniform
  allocation_ratio: 0.5
"""


def test_seed_yaml_and_dotted_overrides(tmp_path):
    path = tmp_path / "sublora_train.yaml"
    path.write_text(SEED_YAML)
    cfg = C.load(path, ["--sublora.intrinsic_dim=1000", "--sublora.allocation_mode", "learned",
                        "--optimizer.learning_rate=1e-3", "--system.seed=123"])
    assert cfg.sublora.intrinsic_dim == 1000 and cfg.sublora.allocation_mode == "learned"
    assert cfg.optimizer.learning_rate == 1e-3 and cfg.optimizer.adam_epislon == 1e-6
    assert cfg.training.gradient_accumulation_steps == 40 and cfg.login.wandb_log is True
    assert cfg.system.seed == 123 and cfg.model.n_layer == 4


@pytest.mark.parametrize("args, field", [
    (["--sublora.intrinsic_dimm=5"], "sublora.intrinsic_dimm"),
    (["--sublorra.intrinsic_dim=5"], "sublorra"),
    (["--sublora.intrinsic_dim=abc"], "sublora.intrinsic_dim"),
    (["--sublora.allocation_mode=adaptive"], "sublora.allocation_mode"),
    (["--sublora.allocation_ratio=1.5"], "sublora.allocation_ratio"),
    (["intrinsic_dim=5"], "intrinsic_dim=5"),
])
def test_bad_overrides_name_the_field(args, field):
    with pytest.raises(BenchlabError, match=field.replace(".", r"\.")):
        C.load(None, args)


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("sublora: [1, 2")
    with pytest.raises(BenchlabError, match="bad.yaml"):
        C.load(path)
    path.write_text("model:\n  n_layer: 12\n  init_from: scratch\n")
    with pytest.raises(BenchlabError, match="model.n_layer"):
        T.base_model(C.load(path))


def test_warmup_then_cosine():
    cfg = fast("--optimizer.learning_rate=1.0", "--learning_rate.warmup_iters=10",
               "--learning_rate.lr_decay_iters=110", "--learning_rate.min_lr_ratio=0.1")
    assert T.lr_at(0, cfg) == pytest.approx(0.1) and T.lr_at(9, cfg) == pytest.approx(1.0)
    assert T.lr_at(60, cfg) == pytest.approx(0.55)
    assert T.lr_at(110, cfg) == pytest.approx(0.1) and T.lr_at(500, cfg) == pytest.approx(0.1)


def test_global_batch_is_split_across_ranks():
    corpus = load_corpus(fast())
    kw = dict(seed=3, step=5, block=16)
    x, y = get_batch(corpus.train, batch=4, **kw)
    x0, _ = get_batch(corpus.train, batch=2, rank=0, world=2, **kw)
    x1, _ = get_batch(corpus.train, batch=2, rank=1, world=2, **kw)
    assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(x[:, 1:], y[:, :-1])


@pytest.mark.parametrize("mode", ["learned", "fixed"])
def test_fixed_seed_reproduces_training_bit_for_bit(mode):
    cfg = fast(f"--sublora.allocation_mode={mode}", "--sublora.intrinsic_dim=300")
    m1, r1 = T.train(cfg, progress=False)
    m2, r2 = T.train(cfg, progress=False)
    assert r1.losses == r2.losses and torch.equal(m1.w, m2.w) and torch.equal(m1.gates, m2.gates)
    assert m1.w.abs().sum() > 0 and len(r1.losses) == 4
    assert (m1.gates.abs().sum() > 0) == (mode == "learned")  # gates train in learned mode only
    m3, r3 = T.train(fast(f"--sublora.allocation_mode={mode}", "--sublora.intrinsic_dim=300",
                          "--system.seed=7"), progress=False)
    assert not torch.equal(m1.w, m3.w)


def test_checkpoint_resume_and_no_overwrite(tmp_path, monkeypatch):
    cfg = fast("--sublora.allocation_mode=learned", "--sublora.intrinsic_dim=200")
    full, _ = T.train(cfg, out_dir=tmp_path / "a", progress=False)
    tensors, meta = T.load_checkpoint(tmp_path / "a")
    assert torch.equal(tensors["w"], full.w.detach())
    assert meta["config"] == json.loads(json.dumps(dataclasses.asdict(cfg)))
    assert meta["layout"]["groups"] == ["h0", "h1", "h2", "h3"] and len(meta["gamma_B"]) == 4
    with pytest.raises(BenchlabError, match="never overwritten"):
        T.train(cfg, out_dir=tmp_path / "a", progress=False)
    with pytest.raises(BenchlabError, match="another run"):
        T.train(fast("--sublora.intrinsic_dim=201"), out_dir=tmp_path / "a", progress=False)

    real_save = T._save_last

    def killed_after_first_eval(out, model, opt, res, step):
        real_save(out, model, opt, res, step)
        raise KeyboardInterrupt

    monkeypatch.setattr(T, "_save_last", killed_after_first_eval)
    with pytest.raises(KeyboardInterrupt):
        T.train(cfg, out_dir=tmp_path / "b", progress=False)
    monkeypatch.setattr(T, "_save_last", real_save)
    resumed, res = T.train(cfg, out_dir=tmp_path / "b", progress=False)
    assert len(res.losses) == cfg.training.max_iters
    assert torch.equal(resumed.w, full.w) and torch.equal(resumed.gates, full.gates)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    info = ddp.setup("cpu")
    cfg = fast("--data.batch_size=2", "--sublora.allocation_mode=learned",
               "--sublora.intrinsic_dim=300")
    model, res = T.train(cfg, progress=False, dist=info)
    if info.main:
        with open(out, "w") as f:
            json.dump({"losses": res.losses, "w": model.w.tolist(), "evals": res.evals}, f)
    ddp.teardown()


def test_ddp_two_gloo_processes_match_one_process(tmp_path):
    out = tmp_path / "ddp.json"
    mp.start_processes(_ddp_worker, args=(2, _free_port(), str(out)), nprocs=2,
                       start_method="fork")
    got = json.loads(out.read_text())
    cfg = fast("--data.batch_size=4", "--sublora.allocation_mode=learned",
               "--sublora.intrinsic_dim=300")
    model, res = T.train(cfg, progress=False)
    torch.testing.assert_close(torch.tensor(got["losses"]), torch.tensor(res.losses),
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.tensor(got["w"]), model.w.detach(), rtol=1e-4, atol=1e-6)
    evals = torch.tensor(res.evals, dtype=torch.float32)  # (step, val loss) per eval
    torch.testing.assert_close(torch.tensor(got["evals"]), evals, rtol=1e-5, atol=1e-6)


def test_nanogpt_bin_directory(tmp_path):
    """The seed's data layout: train.bin / val.bin with EOT after each document (+ eot_indices);
    the EOT id is meta.json's (`benchlab prepare`) or data.eot_token's, never a silent default."""
    import numpy as np

    from benchlab.zoo.data import write_bin

    rng = np.random.default_rng(0)
    docs = [rng.integers(2, 4096, size=n).tolist() + [0] for n in rng.integers(5, 40, size=60)]
    for name in ("bare", "meta"):
        write_bin(tmp_path / name / "train.bin", [t for d in docs for t in d])
        write_bin(tmp_path / name / "val.bin", [t for d in docs[:10] for t in d])
    with pytest.raises(BenchlabError, match=r"bare: meta\.json: .*data\.eot_token") as e:
        load_corpus(fast(f"--data.dataset_dir={tmp_path / 'bare'}"))
    assert "\n" not in str(e.value)
    explicit = load_corpus(fast(f"--data.dataset_dir={tmp_path / 'bare'}", "--data.eot_token=0"))
    assert explicit.m == 60 and explicit.eot == 0
    (tmp_path / "meta" / "meta.json").write_text(json.dumps(
        {"vocab_size": 4096, "eot_id": 0, "tokenizer": "bpe"}))
    cfg = fast(f"--data.dataset_dir={tmp_path / 'meta'}")
    corpus = load_corpus(cfg)
    assert corpus.m == 60 and corpus.train.document(7).tolist() == docs[7]
    _, res = T.train(cfg, progress=False)
    assert len(res.losses) == 4
