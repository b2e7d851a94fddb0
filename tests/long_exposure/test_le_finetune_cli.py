"""`benchlab long-exposure`: finetune writes a loadable safetensors checkpoint and resumes; the
lm_eval command names the five tasks; bad input is one BenchlabError line."""

import json

import pytest
import torch
import transformers

from benchlab import zoo
from benchlab.core.errors import BenchlabError
from benchlab.long_exposure import cli


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A small random OPT saved with the byte tokenizer (as a paper checkpoint would be)."""
    path = tmp_path_factory.mktemp("opt") / "model"
    cfg = transformers.OPTConfig(vocab_size=258, hidden_size=64, ffn_dim=256, num_hidden_layers=2,
                                 num_attention_heads=4, word_embed_proj_dim=64, dropout=0.0,
                                 max_position_embeddings=512, eos_token_id=256, pad_token_id=257,
                                 bos_token_id=256)
    torch.manual_seed(0)
    transformers.OPTForCausalLM(cfg).save_pretrained(path)
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=_byte_tokenizer(), eos_token="<eot>", pad_token="<pad>")
    tok.save_pretrained(path)
    return path


def _byte_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {f"<0x{i:02X}>": i for i in range(256)} | {"<eot>": 256, "<pad>": 257}
    vocab.update({chr(i): i for i in range(32, 127)})  # printable ASCII as itself
    tok = Tokenizer(models.WordLevel({k: v for k, v in vocab.items()}, unk_token="<eot>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    return tok


@pytest.mark.parametrize("mode", ["dense", "le"])
def test_finetune_saves_checkpoint_and_resumes(tmp_path, model_dir, mode, monkeypatch):
    from benchlab.long_exposure import finetune as ft

    out = tmp_path / "run"
    args = ["finetune", "--model", str(model_dir), "--method", "lora", "--mode", mode,
            "--seq-len", "64", "--steps", "3", "--records", "300", "--save-every", "2",
            "--out", str(out)]
    real_step, calls = ft.train_step, []

    def crash_on_third(*a):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_step(*a)

    monkeypatch.setattr(ft, "train_step", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        cli.main(args)
    assert torch.load(out / "train_state.pt", weights_only=True)["step"] == 2
    with pytest.raises(BenchlabError, match="not empty"):
        cli.main(args)  # no silent overwrite of a started run
    monkeypatch.setattr(ft, "train_step", real_step)
    assert cli.main(args + ["--resume"]) == 0
    losses = json.loads((out / "losses.json").read_text())["losses"]
    assert len(losses) == 3 and all(x > 0 for x in losses)
    model = zoo.load(out / "checkpoint")
    assert type(model).__name__ == "OPTForCausalLM"
    assert not any("lora" in n for n, _ in model.named_parameters())  # merged
    with pytest.raises(BenchlabError, match="not overwriting"):
        cli.main(args + ["--resume"])


def test_lm_eval_command_names_the_tasks(tmp_path, model_dir, capsys):
    assert cli.main(["lm-eval", "--checkpoint", str(model_dir), "--print-command"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("lm_eval --model hf --model_args pretrained=")
    assert "--tasks piqa,winogrande,rte,copa,hellaswag" in line
    with pytest.raises(BenchlabError, match="config.json"):
        cli.main(["lm-eval", "--checkpoint", str(tmp_path)])


def test_bad_input_is_one_line_error(tmp_path):
    with pytest.raises(BenchlabError, match="--seq-len"):
        cli.main(["finetune", "--seq-len", "100", "--out", str(tmp_path / "x")])
    with pytest.raises(BenchlabError, match="--data"):
        cli.main(["finetune", "--data", str(tmp_path / "missing.jsonl"), "--out",
                  str(tmp_path / "y")])
    with pytest.raises(SystemExit):
        cli.main(["finetune", "--method", "prompt", "--out", str(tmp_path / "z")])
    if not torch.cuda.is_available():  # before torchrun's process group or any output
        with pytest.raises(BenchlabError, match=r"^--device: cuda requested but torch sees no "
                                                r"CUDA device; use --device cpu \(or auto\)$"):
            cli.main(["finetune", "--device", "cuda", "--out", str(tmp_path / "c")])
        assert not (tmp_path / "c").exists()
    with pytest.raises(SystemExit):
        cli.main(["finetune", "--device", "tpu", "--out", str(tmp_path / "t")])
    with pytest.raises(BenchlabError, match="'le' cannot run prefix tuning"):  # checked first
        cli.main(["finetune", "--method", "prefix", "--mode", "le", "--out", str(tmp_path / "p")])
    assert not (tmp_path / "p").exists()


def test_dense_and_le_runs_pair_and_record_densities(tmp_path, model_dir, monkeypatch):
    """Both modes train on the same rows (the predictor rows held out of both), and the LE
    run records its per-layer densities; a resume with another model is a one-line error."""
    from benchlab.long_exposure import finetune as ft

    real_step, seen = ft.train_step, {}

    def spy(model, opt, batch):
        seen.setdefault(mode, []).append(batch.clone())
        return real_step(model, opt, batch)

    monkeypatch.setattr(ft, "train_step", spy)
    meta = {}
    for mode in ("dense", "le"):
        out = tmp_path / mode
        assert cli.main(["finetune", "--model", str(model_dir), "--mode", mode, "--seq-len", "64",
                         "--steps", "2", "--records", "300", "--out", str(out)]) == 0
        meta[mode] = json.loads((out / "losses.json").read_text())
    assert all(torch.equal(a, b) for a, b in zip(seen["dense"], seen["le"], strict=True))
    assert meta["dense"]["held_out_rows"] == meta["le"]["held_out_rows"] > 0
    le = meta["le"]
    assert len(le["layer_density_attn"]) == len(le["layer_density_mlp"]) == 2
    assert 0 < le["density_attn"] <= le["density_doc"] <= 1 and "keeps_everything" in le
    assert meta["dense"]["density_doc"] == pytest.approx(le["density_doc"])
    state = tmp_path / "other" / "train_state.pt"
    state.parent.mkdir()
    torch.save({"run": {"model": "opt-tiny"}, "step": 1, "trainable": {}, "optimizer": {},
                "losses": []}, state)
    with pytest.raises(BenchlabError, match="run.model: the saved run has 'opt-tiny'"):
        cli.main(["finetune", "--model", str(model_dir), "--seq-len", "64", "--steps", "2",
                  "--records", "300", "--out", str(state.parent), "--resume"])


@pytest.mark.parametrize("density", ["1.5", "-0.1", "nan", "x"])
def test_model_step_density_outside_0_1_is_a_usage_error(density, capsys):
    from benchlab.long_exposure.cli import main as le_main

    with pytest.raises(SystemExit) as e:  # argparse: before any model is built or trained
        le_main(["model-step", "--masks", "synthetic", "--density", density])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "--density" in err[-1]
