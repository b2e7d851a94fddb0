"""Fig 14 (data-parallel scaling), on CPU: `benchlab long-exposure finetune` under torchrun with
1 and N gloo processes of one thread each at the same global batch, dense and Long Exposure, the
process counts rotated over `repeats` repeats so each repeat pairs them under one machine state.

    benchlab long-exposure ddp-scaling --procs 1 2 --repeats 4 --out reports/long_exposure

Per repeat, the speedup of N processes is t_1 / t_N of the median step time (first step left
out); reported: its median over repeats with a 95% bootstrap interval, a paired t-test of log
step times, efficiency speedup / N, and the largest loss difference from one process (data
parallelism must not change what is trained). On GPUs: `--device cuda` (nccl).
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchlab.core import machine
from benchlab.core.errors import BenchlabError
from benchlab.core.stats import paired_ratio, paired_ratio_ci, paired_ttest

MODES = ("dense", "le")


def launch(out: Path, mode: str, nproc: int, *, model: str, seq_len: int, steps: int,
           batch: int, records: int, device: str = "cpu") -> dict:
    """One finetune run under torchrun (`nproc` processes) -> its losses.json."""
    args = ["long-exposure", "finetune", "--model", model, "--method", "lora", "--mode", mode,
            "--seq-len", str(seq_len), "--steps", str(steps), "--batch-size", str(batch),
            "--records", str(records), "--save-every", str(steps), "--device", device,
            "--out", str(out)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", "-m", "benchlab", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BenchlabError(f"ddp-scaling: {mode} with {nproc} processes failed: {tail}")
    return json.loads((out / "losses.json").read_text())


def summarize(runs: dict, procs: tuple[int, ...]) -> dict:
    """runs {(mode, nproc): [losses.json of each repeat]} -> speedups against one process."""
    out = {}
    for mode in sorted({m for m, _ in runs}):
        t = {n: np.array([np.median(r["step_seconds"][1:]) for r in runs[mode, n]])
             for n in procs}
        rows = []
        for n in procs[1:]:
            speedup = paired_ratio(t[procs[0]], t[n])
            lo, hi = paired_ratio_ci(t[procs[0]], t[n], n_resamples=2000)
            p = paired_ttest(np.log(t[procs[0]]), np.log(t[n]))[1] if len(t[n]) > 1 else None
            loss_gap = max(float(np.max(np.abs(np.subtract(a["losses"], b["losses"]))))
                           for a, b in zip(runs[mode, procs[0]], runs[mode, n], strict=True))
            rows.append({"procs": n, "speedup": speedup, "ci": [lo, hi], "p": p,
                         "efficiency": speedup / (n / procs[0]), "max_loss_diff": loss_gap})
        first = runs[mode, procs[0]][0]  # LE: the densities it ran at (equal in every run)
        dens = {k: first[k] for k in ("density_attn", "density_doc", "density_mlp") if k in first}
        out[mode] = {"step_seconds": {str(n): t[n].tolist() for n in procs}, "rows": rows,
                     **dens}
    return out


def run(procs=(1, 2), repeats: int = 4, model: str = "opt-tiny", seq_len: int = 256,
        steps: int = 8, batch: int = 4, records: int = 400, progress: bool = True,
        device: str = "cpu") -> dict:
    import torch

    from benchlab.core import ddp

    if procs[0] != 1 or any(batch % n for n in procs):
        raise BenchlabError(f"--procs: need 1 first and counts that divide the global batch "
                            f"{batch}, got {list(procs)}")
    ddp.placement(device, {}, torch.cuda.is_available())  # cuda without CUDA: one line
    if device == "cuda" and max(procs) > torch.cuda.device_count():
        raise BenchlabError(f"--procs: {max(procs)} processes need as many GPUs; torch sees "
                            f"{torch.cuda.device_count()}")
    runs: dict = {}
    todo = [(mode, n) for r in range(repeats) for mode in MODES
            for n in (procs if r % 2 == 0 else procs[::-1])]  # rotated order per repeat
    with tempfile.TemporaryDirectory() as tmp:
        for i, (mode, n) in enumerate(tqdm(todo, desc="ddp-scaling", disable=not progress)):
            runs.setdefault((mode, n), []).append(launch(
                Path(tmp) / f"run{i}", mode, n, model=model, seq_len=seq_len, steps=steps,
                batch=batch, records=records, device=device))
    return {"model": model, "method": "lora", "seq_len": seq_len, "steps": steps,
            "global_batch": batch, "repeats": repeats, "procs": list(procs), "device": device,
            "threads_per_process": 1, "machine": machine.facts(), **summarize(runs, procs)}


def write(result: dict, outdir) -> list[Path]:
    """ddp_scaling.json, ddp_scaling.md and exp-scale-ddp.png under `outdir`."""
    from benchlab.core.report import new_figure, save_figure

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    js = outdir / "ddp_scaling.json"
    js.write_text(json.dumps(result, indent=1) + "\n")
    m, le = result["machine"], result["le"]
    dens = (f"attention {le['density_attn']:.3f} of the causal blocks (documents alone "
            f"{le['density_doc']:.3f}), MLP {le['density_mlp']:.3f}" if "density_attn" in le
            else "densities not recorded")
    gpu = result.get("device") == "cuda"
    on = (f"nccl, one GPU per process, on {m.get('gpu')}" if gpu
          else f"gloo, one thread per process, on {m.get('cpu')}")
    lines = [f"Data-parallel LoRA fine-tuning of {result['model']} (L={result['seq_len']}, global "
             f"batch {result['global_batch']}, {result['steps']} steps) under torchrun with "
             f"{on} ({result['repeats']} repeats, process "
             "counts rotated). Speedup: t(1 process) / t(N) of the median step time, median over "
             f"repeats [95% bootstrap interval], paired t-test of log times. LE ran at {dens}.",
             "",
             "| mode | processes | speedup | 95% CI | p | efficiency | max loss diff vs 1 |",
             "|---|---|---|---|---|---|---|"]
    fig, ax = new_figure()
    for mode in MODES:
        rows = result[mode]["rows"]
        for r in rows:
            p = f"{r['p']:.2g}" if r["p"] is not None else "n/a"
            lines.append(f"| {mode} | {r['procs']} | {r['speedup']:.2f} | [{r['ci'][0]:.2f}, "
                         f"{r['ci'][1]:.2f}] | {p} | {r['efficiency']:.2f} | "
                         f"{r['max_loss_diff']:.1e} |")
        ax.plot([1] + [r["procs"] for r in rows], [1.0] + [r["speedup"] for r in rows], "o-",
                label="LoRA + LE" if mode == "le" else "LoRA dense")
    ax.plot(result["procs"], result["procs"], "k:", label="ideal")
    ax.set(xlabel=f"processes (one {'GPU' if gpu else 'thread'} each)",
           ylabel="speedup vs one process",
           title=f"Fig 14 on {'GPU' if gpu else 'CPU'}: {result['model']}, L={result['seq_len']}, "
                 f"global batch {result['global_batch']}\nLE at attention "
                 f"{le.get('density_attn', float('nan')):.2f}, MLP "
                 f"{le.get('density_mlp', float('nan')):.2f}")
    ax.legend()
    md = outdir / "ddp_scaling.md"
    md.write_text("\n".join(lines) + "\n")
    return [js, md, save_figure(fig, outdir, "exp-scale-ddp")]
