"""The glue from a trained model to its bound: documents evaluated with the quantized w, the gates
paid for, the saved bound recomputable, the CLI commands and their bad-input errors, the shipped
configs, and the w = 0 baseline."""

import json

import numpy as np
import pytest
import torch

from benchlab import sublora as sl
from benchlab.cli import main as top_main
from benchlab.core.errors import BenchlabError
from benchlab.sublora import config as C
from benchlab.sublora import train as T
from benchlab.sublora.bounds import load_bounds_metrics, recompute_bound
from benchlab.sublora.cli import main as sl_main
from benchlab.sublora.data import load_corpus, sample_documents
from benchlab.sublora.evaluate import document_risks, eval_bounds
from benchlab.sublora.sweep import run_config

FAST = ["--model.init_from=scratch", "--data.batch_size=2", "--data.block_size=16",
        "--training.max_iters=4", "--training.eval_interval=2", "--training.eval_iters=1",
        "--learning_rate.warmup_iters=1", "--learning_rate.lr_decay_iters=4",
        "--data.n_documents=1000", "--data.n_val_documents=50", "--bounds.bound_samples=12",
        "--bounds.max_doc_tokens=64", "--sublora.intrinsic_dim=200"]


@pytest.fixture(scope="module")
def learned():
    cfg = C.load(None, FAST + ["--sublora.allocation_mode=learned"])
    model, _ = T.train(cfg, progress=False)
    return cfg, model


def test_document_risks_match_a_direct_evaluation(learned):
    cfg, model = learned
    corpus = load_corpus(cfg)
    docs = sample_documents(corpus.m, 5, seed=3)
    w_hat = torch.round(model.w.detach() * 100) / 100  # any vector: the glue must use it
    acc = document_risks(model, corpus, docs, cfg, w_hat, model.gates.detach())
    per_doc, per_doc_smooth = [], []
    a, V = cfg.bounds.alphas[3], corpus.vocab_size
    for i in docs:  # one document at a time, no padding, plain log-softmax
        doc = torch.from_numpy(corpus.train.document(int(i))[: cfg.bounds.max_doc_tokens])
        x = torch.cat([torch.tensor([corpus.eot]), doc[:-1]])[None]
        with torch.no_grad():
            p = torch.softmax(model(x, w=w_hat).double(), -1)[0].gather(1, doc[:, None])[:, 0]
        per_doc.append(float(-torch.log2(p).mean()))
        per_doc_smooth.append(float(-torch.log2((1 - a) * p + a / V).mean()))
    assert acc.n_docs == 5
    assert acc.raw_bpd() == pytest.approx(np.mean(per_doc), rel=1e-5)
    assert acc.risks()[3] == pytest.approx(np.mean(per_doc_smooth), rel=1e-5)


def test_eval_bounds_pays_for_the_gates_and_saves_a_recomputable_bound(learned, tmp_path):
    cfg, model = learned
    corpus = load_corpus(cfg)
    m = eval_bounds(model, corpus, cfg, out_dir=tmp_path)
    assert m["n_side"] == 4 and m["side_bits"] == 4 * 32  # one float32 gate per layer
    assert m["d"] == 200 and m["m"] == 1000 and m["s"] == 12
    assert m["compressed_size_bits"] == m["code_bits"] + m["counts_bits"] + m["codebook_bits"] \
        + m["side_bits"]
    saved = load_bounds_metrics(tmp_path / "bounds_metrics.json")
    assert recompute_bound(saved) == pytest.approx(saved["bound_value"], rel=1e-12)
    assert saved["inputs"]["mode"] == "learned" and len(saved["inputs"]["gamma_B"]) == 4
    with pytest.raises(BenchlabError, match="never overwritten"):
        eval_bounds(model, corpus, cfg, out_dir=tmp_path)
    uniform = C.load(None, FAST)
    m_u = eval_bounds(T.build_model(uniform), load_corpus(uniform), uniform)
    assert m_u["n_side"] == 0 and m_u["side_bits"] == 0


def test_cli_train_then_eval_bounds(tmp_path, capsys):
    out = tmp_path / "run"
    args = FAST + ["--sublora.allocation_mode=fixed", "--sublora.allocation_ratio=0.8",
                   f"--login.out_dir={out}", "--system.device=cpu"]
    assert sl_main(["train", "--no-progress", *args]) == 0
    assert (out / "best_ckpt.safetensors").exists() and (out / "best_ckpt.json").exists()
    assert top_main(["sublora", "eval-bounds", "--checkpoint", str(out)]) == 0
    metrics = json.loads((out / "bounds_metrics.json").read_text())
    assert metrics["inputs"]["ratio"] == 0.8 and metrics["inputs"]["mode"] == "fixed"
    # saved results are never overwritten: one-line error, exit status 2
    assert top_main(["sublora", "eval-bounds", f"--model.best_checkpoint_path={out}"]) == 2
    assert top_main(["sublora", "eval-bounds", "--checkpoint", str(out),
                     f"--output_dir={tmp_path / 'b'}", "--bounds.levels=5"]) == 0
    assert json.loads((tmp_path / "b" / "bounds_metrics.json").read_text())["levels"] == 5
    assert top_main(["sublora", "train", "--sublora.allocation_mode=adaptive"]) == 2
    assert "sublora.allocation_mode" in capsys.readouterr().err


def test_shipped_configs_load_and_the_tiny_study_trains_from_scratch():
    """The YAMLs ship in the package and the seed's path finds them; the tiny scale is the scratch
    study (random theta0, LoRA on the lm_head too), sliced by overrides, with a w = 0 row."""
    names = C.packaged()
    assert {"sublora_train.yaml", "sublora_finetune.yaml", "sublora_bounds.yaml"} <= set(names)
    for name in names:
        C.load(name)
    assert C.load("config/sublora_train.yaml") == C.load(C.CONFIG_DIR / "sublora_train.yaml")
    config = sl.CONFIGS["tiny"]
    cases = sl.sweep_cases(config)
    assert list(dict.fromkeys(c.mode for c in cases)) == [
        "w0", "unigram", "bigram", "grouped", "fixed", "learned"]
    assert config.min_gain_over_w0 == 0.5 and len(config.seeds) == 8
    cfg = run_config(config, cases[-1])
    assert cfg.model.init_from == "scratch" and cfg.sublora.linear_head_enable_lora
    assert cfg.training.max_iters == 20 and cfg.bounds.bound_type == "document_level"
    assert run_config(config, cases[0]).sublora.allocation_mode == "uniform"  # w0: any layout
    assert C.load("sublora_finetune.yaml").model.init_from == "zoo-trained"


def test_w0_run_is_the_untrained_prior(tmp_path):
    """mode w0 takes no step: w stays 0, the checkpoint says step 0, the bound is the prior's."""
    config = sl.Config(overrides=tuple(f[2:] for f in FAST), dims=(200,), modes=(sl.W0,),
                       seeds=(5,))
    (case,) = sl.sweep_cases(config)
    out = sl.run_point(config, case, out_dir=tmp_path / "w0")
    tensors, meta = T.load_checkpoint(tmp_path / "w0")
    assert meta["step"] == 0 and not tensors["w"].any() and out["best_step"] == 0
    saved = load_bounds_metrics(tmp_path / "w0" / "bounds_metrics.json")
    assert saved["inputs"]["baseline"] is True and saved["bound_value"] == out["bound_value"]
    # the same model bounded by hand: w = 0 quantizes to one symbol
    cfg = run_config(config, case)
    by_hand = eval_bounds(T.build_model(cfg), load_corpus(cfg), cfg)
    assert by_hand["bound_value"] == pytest.approx(out["bound_value"], rel=1e-12)


@pytest.mark.parametrize("args, where", [
    (["--bounds.bound_type=token_level"], "bounds.bound_type"),
    (["--bounds.levels=1"], "bounds.levels"),
    (["--sublora.intrinsic_dim=300"], "sublora.intrinsic_dim"),
    (["--sublora.allocation_mode=learned"], "sublora.allocation_mode"),
])
def test_eval_bounds_bad_input_one_line_exit_2(trained_dir, args, where, capsys):
    before = (trained_dir / "best_ckpt.safetensors").read_bytes()
    assert top_main(["sublora", "eval-bounds", f"--model.best_checkpoint_path={trained_dir}",
                     *args]) == 2
    err = capsys.readouterr().err.strip()
    assert where in err and len(err.splitlines()) == 1
    assert (trained_dir / "best_ckpt.safetensors").read_bytes() == before
    assert not (trained_dir / "bounds_metrics.json").exists()


def test_eval_bounds_truncated_or_foreign_checkpoint(trained_dir, tmp_path, capsys):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(trained_dir, bad)
    blob = (bad / "best_ckpt.safetensors").read_bytes()
    (bad / "best_ckpt.safetensors").write_bytes(blob[: len(blob) // 2])
    assert top_main(["sublora", "eval-bounds", "--checkpoint", str(bad)]) == 2
    assert "best_ckpt.safetensors: checkpoint: unreadable" in capsys.readouterr().err
    # tensors of another d under this run's metadata
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(300), "gates": torch.zeros(0)}, str(bad / "best_ckpt.safetensors"))
    assert top_main(["sublora", "eval-bounds", "--checkpoint", str(bad)]) == 2
    assert "sublora.intrinsic_dim" in capsys.readouterr().err
    (bad / "best_ckpt.json").write_text("{")
    assert top_main(["sublora", "eval-bounds", "--checkpoint", str(bad)]) == 2
    assert "best_ckpt.json: not valid JSON" in capsys.readouterr().err
    ok = top_main(["sublora", "eval-bounds", f"--model.best_checkpoint_path={trained_dir}",
                   "--bounds.bound_type=document_level", f"--output_dir={tmp_path / 'ok'}"])
    assert ok == 0 and (tmp_path / "ok" / "bounds_metrics.json").exists()


def test_eval_bounds_accepts_the_seed_data_file_flags(trained_dir, tmp_path, capsys):
    """The seed's --data.openwebtext_train_eot_indices_file and
    --data.empirical_document_length_distribution_file: an existing file is accepted (unused by
    a synthetic-corpus run: a note on stderr says so), a missing one is a one-line error."""
    eots, lengths = tmp_path / "eot_indices.npy", tmp_path / "lengths.npy"
    np.save(eots, np.arange(3))
    np.save(lengths, np.ones(4))
    flags = [f"--data.openwebtext_train_eot_indices_file={eots}",
             f"--data.empirical_document_length_distribution_file={lengths}"]
    assert top_main(["sublora", "eval-bounds", f"--model.best_checkpoint_path={trained_dir}",
                     *flags, f"--output_dir={tmp_path / 'out'}"]) == 0
    err = capsys.readouterr().err
    assert "openwebtext_train_eot_indices_file: not used" in err
    assert "empirical_document_length_distribution_file: not used" in err
    assert (tmp_path / "out" / "bounds_metrics.json").exists()
    assert top_main(["sublora", "eval-bounds", "--checkpoint", str(trained_dir),
                     f"--data.empirical_document_length_distribution_file={tmp_path / 'no'}",
                     f"--output_dir={tmp_path / 'out2'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "empirical_document_length_distribution_file" in err[0]
    assert "no such file" in err[0] and not (tmp_path / "out2").exists()


def test_huge_intrinsic_dim_and_binary_yaml_are_one_line_errors(tmp_path, capsys):
    out = tmp_path / "run"
    assert top_main(["sublora", "train", "--model.init_from=scratch",
                     "--sublora.intrinsic_dim=1e30", f"--login.out_dir={out}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sublora.intrinsic_dim" in err[0] and "64-bit" in err[0]
    assert top_main(["sublora", "train", "--model.init_from=scratch",
                     "--sublora.intrinsic_dim=1000000000000", f"--login.out_dir={out}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sublora.intrinsic_dim" in err[0] and "exceeds" in err[0]
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(bytes([0, 1, 0xFF, 0xFE]))
    assert top_main(["sublora", "train", "--config-file", str(binary)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bin.yaml: config-file: not a text file" in err[0]


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    assert sl_main(["train", "--no-progress", *FAST, f"--login.out_dir={out}"]) == 0
    return out


@pytest.mark.parametrize("extra, method", [(["--bounds.quant_method=kmeans"], "kmeans"),
                                           (["--bounds.qat_iters=3"], "qat")])
def test_kmeans_and_quantization_aware_finetuning(learned, extra, method):
    base_cfg, model = learned
    cfg = C.load(None, FAST + ["--sublora.allocation_mode=learned", *extra])
    before = model.w.detach().clone()
    m = eval_bounds(model, load_corpus(cfg), cfg)
    assert m["inputs"]["quant_method"] == method and m["levels"] == cfg.bounds.levels
    assert torch.equal(model.w.detach(), before)  # QAT works on a copy; the model is untouched
    assert recompute_bound(m) == pytest.approx(m["bound_value"], rel=1e-12)


@pytest.mark.parametrize("override, message", [
    ("--data.batch_size=0", "data.batch_size: must be >= 1"),
    ("--optimizer.learning_rate=nan", "optimizer.learning_rate: must be finite"),
    ("--optimizer.learning_rate=-1e-3", "optimizer.learning_rate: must be > 0"),
    ("--bounds.eps=0", "bounds.eps: must be > 0"),
    ("--sublora.intrinsic_dim=0", "sublora.intrinsic_dim: must be >= 1"),
])
def test_train_rejects_out_of_range_values_before_training(tmp_path, capsys, override, message):
    out = tmp_path / "run"
    code = top_main(["sublora", "train", override, f"--login.out_dir={out}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0] and not out.exists()
