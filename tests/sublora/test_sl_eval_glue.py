"""The glue from a trained model to its bound: documents evaluated with the quantized w, the gates
paid for, the saved bound recomputable, the CLI commands, and a non-vacuous tiny default."""

import json
import math

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


def test_tiny_default_bound_is_non_vacuous():
    """The benchmark's tiny sweep point (zoo-trained base, m = 300k documents): bound < log2 V."""
    config = sl.CONFIGS["tiny"]
    case = next(c for c in sl.sweep_cases(config) if c.mode == "learned")
    out = sl.run_point(config, case)
    assert out["non_vacuous"] and out["bound_value"] < math.log2(4096) == out["random_guess_bpd"]
    assert out["m"] == 300_000 and out["empirical_bpd"] < out["bound_value"]
    assert len(out["gamma_B"]) == 4 and any(abs(g - 0.5) > 1e-3 for g in out["gamma_B"])


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
