"""Data-parallel fine-tuning (Fig 14): `torchrun --nproc_per_node=2 -m benchlab long-exposure
finetune` with 2 gloo processes on CPU against one process with the same global batch, LoRA on
opt-tiny, dense and Long Exposure. MULTI-PROCESS test: it launches torchrun in subprocesses
(one torch thread per process), about 60 s in all.

Tolerances (measured on CPU, 3 steps, global batch 4, seq_len 64): losses differ by <= 7.2e-7
(1.5 float32 ulps at loss 6.5: the 2-process loss is the mean of two half-batch means), trained
LoRA weights by <= 5.4e-6 (LE) and 3.3e-6 (dense), median 0. The weight differences come from
lora_A, whose gradient is exactly 0 at the first step (lora_B starts at 0) and then tiny:
AdamW divides by sqrt(v), so float32 reduction-order noise on near-zero gradients grows to a few
1e-6 of a 1e-3 step. A run on half the batch (what a missing gradient average would train on)
moves the weights by ~4e-3 and the losses by ~0.2, far outside the tolerances used here.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist

from benchlab.core import ddp
from benchlab.core.errors import BenchlabError

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="multi-process test: needs torch.distributed with gloo")

LOSS_ATOL, WEIGHT_ATOL = 1e-5, 2e-5


def _finetune(out, mode: str, nproc: int, batch: int = 4) -> subprocess.CompletedProcess:
    args = ["long-exposure", "finetune", "--model", "opt-tiny", "--method", "lora", "--mode",
            mode, "--seq-len", "64", "--steps", "3", "--batch-size", str(batch), "--records",
            "150", "--device", "cpu", "--out", str(out)]
    launch = [sys.executable, "-m", "benchlab"] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={nproc}", "-m", "benchlab"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TQDM_DISABLE": "1"}
    return subprocess.run([*launch, *args], env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module", params=["dense", "le"])
def runs(request, tmp_path_factory):
    """(one process, two processes) outputs of the same run."""
    outs = []
    for nproc in (1, 2):
        out = tmp_path_factory.mktemp(f"{request.param}-{nproc}") / "run"
        done = _finetune(out, request.param, nproc)
        assert done.returncode == 0, done.stderr[-3000:]
        outs.append(out)
    return request.param, outs


def _read(out):
    state = torch.load(out / "train_state.pt", weights_only=True)
    return json.loads((out / "losses.json").read_text()), state["trainable"]


def test_two_gloo_processes_match_one_process(runs):
    mode, (one, two) = runs
    (log1, w1), (log2, w2) = _read(one), _read(two)
    assert (log1["processes"], log2["processes"]) == (1, 2)
    assert log1["device"] == log2["device"] == "cpu"
    assert len(log1["losses"]) == len(log2["losses"]) == 3
    torch.testing.assert_close(torch.tensor(log2["losses"]), torch.tensor(log1["losses"]),
                               rtol=0, atol=LOSS_ATOL)
    assert w1.keys() == w2.keys() and any("lora_B" in n for n in w1)
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], rtol=0, atol=WEIGHT_ATOL, msg=name)
    # training moved the weights far beyond the tolerance (lora_B starts at 0)
    assert min(float(w1[n].abs().max()) for n in w1 if "lora_B" in n) > 50 * WEIGHT_ATOL
    if mode == "le":  # the same masks: densities of the global batches, count for count
        for key in ("density_attn", "density_mlp", "density_doc", "keeps_everything",
                    "layer_density_attn", "layer_density_mlp"):
            assert log2[key] == log1[key], key
    assert (two / "checkpoint" / "config.json").exists()


def test_global_batch_not_divisible_is_one_line_error(tmp_path):
    with pytest.raises(BenchlabError, match=r"^--batch-size: global batch 3 does not divide by "
                                            r"the 2 processes; choose a multiple of 2$"):
        ddp.local_batch(3, ddp.Dist(rank=1, world=2), "--batch-size")
    done = _finetune(tmp_path / "run", "dense", 2, batch=3)
    assert done.returncode != 0
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("benchlab: error:")]
    assert lines and set(lines) == {"benchlab: error: --batch-size: global batch 3 does not "
                                    "divide by the 2 processes; choose a multiple of 2"}
    assert not (tmp_path / "run").exists()  # nothing written


def test_ddp_scaling_summary_pairs_repeats_and_checks_losses(tmp_path):
    """summarize: per repeat t_1 / t_N of the median step time (first step left out), the median
    over repeats, efficiency = speedup / N, and the largest loss gap; write renders all of it."""
    import numpy as np
    from scipy import stats

    from benchlab.long_exposure import ddp_scaling as ds

    def log(secs, losses=(6.5, 6.4, 6.3)):
        return {"step_seconds": list(secs), "losses": list(losses)}

    one = [log([9.0, 1.0, 1.2, 1.1]), log([5.0, 2.0, 2.2, 2.4]), log([1.0, 1.5, 1.5, 1.5])]
    one[0].update(density_attn=0.25, density_doc=0.3, density_mlp=1.0)
    two = [log([9.0, 0.6, 0.5, 0.7]), log([5.0, 1.2, 1.0, 1.1]), log([1.0, 1.0, 0.9, 0.8],
                                                                    (6.5, 6.4, 6.3 + 2e-6))]
    out = ds.summarize({("le", 1): one, ("le", 2): two}, (1, 2))
    (row,) = out["le"]["rows"]
    t1, t2 = np.array([1.1, 2.2, 1.5]), np.array([0.6, 1.1, 0.9])
    assert row["speedup"] == pytest.approx(np.median(t1 / t2))
    assert row["efficiency"] == pytest.approx(np.median(t1 / t2) / 2)
    assert row["p"] == pytest.approx(stats.ttest_rel(np.log(t1), np.log(t2)).pvalue)
    assert row["max_loss_diff"] == pytest.approx(2e-6)
    assert row["ci"][0] <= row["speedup"] <= row["ci"][1]
    result = {"model": "opt-tiny", "seq_len": 64, "global_batch": 4, "steps": 4, "repeats": 3,
              "procs": [1, 2], "machine": {"cpu": "test cpu"}, "dense": out["le"], **out}
    paths = ds.write(result, tmp_path)
    assert [p.name for p in paths] == ["ddp_scaling.json", "ddp_scaling.md", "exp-scale-ddp.png"]
    md = paths[1].read_text()
    assert "on test cpu" in md and f"| le | 2 | {row['speedup']:.2f} |" in md
    assert "LE ran at attention 0.250 of the causal blocks (documents alone 0.300), MLP 1.000" in md


@pytest.mark.parametrize("procs", [(2, 4), (1, 3)])
def test_ddp_scaling_process_counts_are_checked_first(procs):
    from benchlab.long_exposure import ddp_scaling as ds

    with pytest.raises(BenchlabError, match=r"^--procs: need 1 first"):
        ds.run(procs, batch=4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_ddp_scaling_cuda_without_cuda_is_one_line_error():
    from benchlab.long_exposure import ddp_scaling as ds

    with pytest.raises(BenchlabError, match=r"^--device: cuda requested but torch sees no CUDA"):
        ds.run((1, 2), batch=4, device="cuda")
