"""The seed-compatible runner: kill it mid-way, rerun, nothing finished is rerun or lost; and the
report is a deterministic function of the records.

    /work/venv/bin/pytest tests/moe_routing/test_moe_runner.py -q
"""

import filecmp
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from transformers import OlmoeConfig, OlmoeForCausalLM

from benchlab import zoo
from benchlab.core.errors import BenchlabError
from benchlab.core.store import ResultStore, record_key
from benchlab.moe_routing import cli, report

N_CASES = 2 * 8  # two routings x 8 prompts (2 per category)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A small random OLMoE with the zoo vocabulary, saved like a hub checkpoint (no tokenizer:
    the runner falls back to the zoo BPE)."""
    cfg = OlmoeConfig(vocab_size=zoo.VOCAB_SIZE, hidden_size=32, intermediate_size=16,
                      num_hidden_layers=2, num_attention_heads=2, num_experts=64,
                      num_experts_per_tok=8, pad_token_id=zoo.PAD_ID, eos_token_id=zoo.EOT_ID,
                      bos_token_id=zoo.EOT_ID)
    torch.manual_seed(0)
    model = OlmoeForCausalLM(cfg).eval()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.mlp.gate.weight.normal_(0, 0.3)
    path = tmp_path_factory.mktemp("olmoe") / "model"
    model.save_pretrained(path)
    return path


def command(model_dir, out, *extra):
    return [sys.executable, "-m", "benchlab.cli", "moe-routing", "run", "--model", str(model_dir),
            "--output", str(out), "--max-tokens", "3", "--checkpoint-interval", "4",
            "--device", "cpu", "--no-fp16", "--configs", "topk_8,bh_loose",
            "--prompts-per-category", "2", *extra]


def test_kill_mid_run_then_resume(model_dir, tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen(command(model_dir, out), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    store = out / "store.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if store.exists() and store.read_bytes().count(b"\n") >= 2:  # two whole lines
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = ResultStore(store).read()
    assert 2 <= len(first) < N_CASES  # killed mid-way
    assert list((out / "nulls").glob("per_expert-*-under-bh_loose.safetensors"))

    done = subprocess.run(command(model_dir, out), env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{len(first)} of {N_CASES} results already" in done.stdout
    records = ResultStore(store).read()
    keys = Counter(record_key(r) for r in records)
    assert len(keys) == N_CASES and max(keys.values()) == 1  # none rerun, none lost
    assert records[:len(first)] == first  # finished results untouched
    digests = {r["metrics"]["null_digest"] for r in records if "bh_loose" in r["case"]}
    assert len(digests) == 1 and "" not in digests  # the stored null reused
    assert not [r for r in records if "topk_8" in r["case"] and r["metrics"]["null_digest"]]

    csv = (out / "bh_routing_results.csv").read_text().splitlines()
    assert csv[0].startswith(  # the seed's 14 columns first, in its order
        "config_name,prompt_category,prompt_text,avg_experts_per_token,std_experts_per_token,"
        "min_experts,max_experts,inference_time_sec,tokens_per_sec,expert_utilization_cv,"
        "expert_utilization_max_min_ratio,num_input_tokens,num_output_tokens,generated_text,")
    assert len(csv) == N_CASES + 1
    summary = json.loads((out / "analysis_summary.json").read_text())
    assert set(summary["configs"]) == {"topk_8", "bh_loose"}
    assert "p" in summary["configs"]["bh_loose"]["vs_topk_8"]["avg_experts_per_token"]
    text = (out / "REPORT.md").read_text()
    for name in ("avg_experts_comparison", "inference_time_comparison", "expert_utilization_cv",
                 "experts_by_category", "experts_vs_latency"):  # the seed's five plots, by name
        assert (out / "plots" / f"{name}.png").exists() and f"(plots/{name}.png)" in text
    assert (out / "experts_vs_quality.png").exists()
    log = (out / "experiment_log.txt").read_text()  # the console output of both runs
    assert log.count("results already in") == 2
    assert log.count(" experts/token, ") >= N_CASES - len(first)
    pointer = json.loads((out / "checkpoints" / "latest_checkpoint.json").read_text())
    assert pointer["store"] == "store.jsonl"

    # the run folder's null, rerun with another model: one-line error naming the null file and
    # field, exit 2, the store untouched
    other = OlmoeForCausalLM.from_pretrained(model_dir)
    with torch.no_grad():
        other.model.layers[0].mlp.gate.weight.mul_(1.5)
    other.save_pretrained(tmp_path / "other")
    before = store.read_bytes()
    bad = subprocess.run(command(tmp_path / "other", out), env=env, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert ".safetensors: meta.model_digest: null has" in bad.stderr.strip().splitlines()[-1]
    assert store.read_bytes() == before

    # the report is a function of the records only: rebuilt twice -> identical bytes
    recs = list(ResultStore(store).latest().values())
    report(recs, tmp_path / "a")
    assert cli.main(["report", str(store), "--output", str(tmp_path / "b")]) == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir() if p.is_file())
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", names,
                                               shallow=False)
    assert not mismatch and not errors and len(match) >= 10


def test_run_leaves_a_store_that_compare_reads(model_dir, tmp_path, capsys):
    """Two runs of the fastest grid (one routing, one prompt per category, one new token) leave
    stores of core records: `benchlab compare` matches them case by case, nothing moved."""
    from benchlab.core.compare import compare
    from benchlab.core.results import load_records

    stores = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert cli.main(["run", "--model", str(model_dir), "--output", str(out), "--max-tokens",
                         "1", "--device", "cpu", "--no-fp16", "--configs", "topk_8",
                         "--prompts-per-category", "1"]) == 0
        stores.append(load_records(out / "store.jsonl"))
    assert len(stores[0]) == 4 and {r["kind"] for r in stores[0]} == {"generate"}
    assert [r["config_hash"] for r in stores[0]] == [r["config_hash"] for r in stores[1]]
    rows, compared = compare(*stores)
    assert rows == [] and compared > 0
    assert "0 of 4 results already" in capsys.readouterr().out


def test_bad_input_is_one_line_error(tmp_path, capsys):
    for option, value in (("--prompts-per-category", "-2"), ("--checkpoint-interval", "0"),
                          ("--max-tokens", "0")):
        with pytest.raises(SystemExit):
            cli.main(["run", "--output", str(tmp_path), option, value])
        assert capsys.readouterr().err.splitlines()[-1].endswith(
            f"error: argument {option}: must be >= 1, got {value}")
    with pytest.raises(BenchlabError, match="frontier rule"):
        cli.main(["frontier", "--output", str(tmp_path), "--rules", "bh_pooled@0.33"])
    with pytest.raises(BenchlabError, match="did you mean"):
        cli.main(["run", "--output", str(tmp_path), "--configs", "bh_modrate"])
    with pytest.raises(BenchlabError, match="no moe_routing records"):
        Path(tmp_path / "empty.jsonl").write_text("")
        cli.main(["report", str(tmp_path / "empty.jsonl")])


def test_report_speed_section_puts_each_ratio_beside_its_goal():
    from benchlab.moe_routing.report import speed_lines

    speed = {"router_cost": {"bh_moderate": {"ratio_vs_topk_router": 1.2,
                                             "ratio_vs_torch_topk": 1.4}},
             "forward_equal_count": {"bh_loose": {
                 "forward_ratio": 1.04, "forward_ratio_ci": [1.0, 1.1], "mean_experts": 3.2,
                 "model_router_ratio": 1.3, "router_overhead": 0.026,
                 "bh_active_experts": 64.0, "topk_active_experts": 23.25, "topk_lo": 3,
                 "bh_util_cv": 0.78, "topk_util_cv": 4.1}},
             "layer_scaling": {"ks": [1, 8], "relative_times": [0.2, 1.0],
                               "time_per_expert_slope": 0.9}}
    text = "\n".join(speed_lines(speed))
    assert "| bh_moderate | 1.2 | <= 1.5 | vs bare torch.topk 1.4 |" in text
    assert "| bh_loose | 1.04 | <= 1.05 | 95% CI 1-1.1;" in text and "adds 2.6% of" in text
    assert ("experts with rows 64 (top-3: 23.2), rows-per-expert CV 0.78 (top-3: 4.1) |"
            in text)
    assert "| 0.9 | >= 0.8 | relative times 0.20, 1.00 |" in text
