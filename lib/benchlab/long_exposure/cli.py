r"""`benchlab long-exposure ...`: the artifact's fine-tuning entry points, seed-compatible.

    benchlab long-exposure records --n 2000 --out runs/e2e.jsonl
    benchlab long-exposure finetune --model opt-tiny --method lora --mode le --seq-len 512 \
        --steps 20 --out runs/lora-le
    benchlab long-exposure lm-eval --checkpoint runs/lora-le/checkpoint
    benchlab long-exposure accuracy --out runs/table4       # Table IV at tiny: base, dense, LE
    benchlab long-exposure model-step --scale small --masks synthetic --density 0.25 --rounds 2
    benchlab long-exposure attn-study --seq-len 1024 --rounds 7 --out reports/long_exposure

`finetune` trains on packed E2E-style records (generated, or --data: JSONL records, the E2E
CSV, or the artifact's pre-tokenized JSONL), dense (eager, SDPA,
per-document SDPA) or Long Exposure (predicted block-sparse attention and MLP), attention always
inside documents, shows progress, saves a resumable state every --save-every steps, and writes a
safetensors checkpoint (LoRA merged) plus losses.json. Runs pair: the first `predictor_rows`
packed rows of the scale are held out of BOTH modes (LE trains its predictors on them), so dense
and LE train on the same rows in the same order and their losses compare step by step;
losses.json records the rows used and, per layer, the densities the run ran at (attention kept /
causal blocks, document blocks / causal blocks, MLP kept neuron blocks) and whether the masks
kept everything. --device auto runs on CUDA when there is one. Under `torchrun
--nproc_per_node=N -m benchlab long-exposure finetune ...` it trains data-parallel (core.ddp:
--batch-size is the global batch; nccl with one GPU per process on CUDA, gloo on CPU).
`lm-eval` evaluates a saved checkpoint through lm-evaluation-harness's Python API (accuracy.py):
offline on `zoo_cloze`, a 4-way cloze task built from the zoo's held-out text, or on the
artifact's piqa, winogrande, rte, copa and hellaswag where the hub or a local datasets cache has
them (`--print-command` prints the equivalent lm_eval command line instead). `accuracy` is
Table IV in one resumable command: dense and LE fine-tuning on the same rows, lm_eval on the base
model and both checkpoints, and accuracy.{json,md} with McNemar's exact test of dense vs base
and LE vs dense (paper scale: --model opt-1.3b --scale paper --seq-len 1024 --steps 500
--tasks piqa,winogrande,rte,copa,hellaswag --device cuda).
"""

import argparse
import dataclasses
import itertools
import json
import shlex
from pathlib import Path

import numpy as np

from benchlab.core import machine
from benchlab.core.errors import BenchlabError, first_line
from benchlab.core.options import bounded
from benchlab.core.timing import threads

TASKS = ("piqa", "winogrande", "rte", "copa", "hellaswag")


def lm_eval_command(checkpoint, tasks=TASKS, batch_size: int = 8, device: str = "cuda:0") -> str:
    ckpt = str(checkpoint)
    return (f"lm_eval --model hf --model_args pretrained={shlex.quote(ckpt)},dtype=float32 "
            f"--tasks {','.join(tasks)} --device {device} --batch_size {batch_size} "
            f"--output_path {shlex.quote(str(Path(ckpt) / 'lm_eval'))}")


def cmd_records(args) -> int:
    from .e2e import write_e2e_jsonl

    path = write_e2e_jsonl(args.out, args.n, args.seed)
    print(f"wrote {args.n} records to {path}")
    return 0


def _read_state(path: Path) -> dict:
    """A saved train_state.pt (weights_only), checked for the fields a resume reads."""
    import pickle

    import torch

    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, ValueError) as e:
        raise BenchlabError(f"{path}: train_state: unreadable ({first_line(e)[:120]})") from None
    want = {"trainable": dict, "optimizer": dict, "step": int, "losses": list, "run": dict}
    for key, kind in want.items():
        if not isinstance(state, dict) or not isinstance(state.get(key), kind):
            raise BenchlabError(f"{path}: {key}: missing or not a {kind.__name__}")
    return state


def cmd_finetune(args) -> int:
    """One process, or data-parallel under torchrun (core.ddp): --batch-size is the global
    batch, each process trains on its rows of every global batch, DDP averages the trainable
    gradients, LE predictors are trained on rank 0 and broadcast (the masks are per row, so every
    process masks its rows as one process would), losses and densities are global, and only
    rank 0 writes."""
    import os

    import torch

    from benchlab.core import ddp

    _, device = ddp.placement(args.device, os.environ, torch.cuda.is_available())
    info = ddp.setup(device)
    try:
        return _finetune(args, info, device)
    finally:
        ddp.teardown()


def _finetune(args, info, device: str = "cpu") -> int:
    import time

    import torch

    from benchlab.core import ddp

    from . import CONFIGS
    from . import finetune as ft
    from . import workload as wl
    from .e2e import write_e2e_jsonl

    ddp.local_batch(args.batch_size, info, "--batch-size")
    le = args.mode == "le"
    wl.check_method_mode(args.method, "le" if le else args.attn)
    out = Path(args.out)
    state_path = out / "train_state.pt"
    if out.exists() and any(out.iterdir()) and not (args.resume and state_path.exists()):
        raise BenchlabError(f"{out}: output directory exists and is not empty; choose a new "
                            "--out (or --resume a run that saved train_state.pt)")
    if (out / "checkpoint").exists():
        raise BenchlabError(f"{out / 'checkpoint'}: run already finished; not overwriting")
    # every input is read and checked (by every process) before anything is written
    state = _read_state(state_path) if args.resume and state_path.exists() else None
    data = Path(args.data) if args.data else out / "e2e.jsonl"
    if args.data and not data.is_file():
        raise BenchlabError(f"{data}: --data: no such file")
    # --data: text records (JSONL, E2E CSV) or the artifact's pre-tokenized JSONL
    rows = wl.data_rows(data, args.model, args.seq_len) if args.data else None
    ddp.barrier(info)  # all checked before rank 0 writes
    if info.main:
        out.mkdir(parents=True, exist_ok=True)
        if rows is None and not data.exists():
            write_e2e_jsonl(data, args.records, args.seed)
    ddp.barrier(info)
    if rows is None:
        rows = wl.data_rows(data, args.model, args.seq_len)
    config = dataclasses.replace(CONFIGS[args.scale], lr=args.lr, batch_size=args.batch_size,
                                 seed=args.seed)
    n_pred = config.predictor_rows  # held out of both modes: dense and LE runs pair
    if rows.shape[0] < n_pred + args.batch_size:
        raise BenchlabError(f"{data}: {rows.shape[0]} packed rows of {args.seq_len} tokens; "
                            f"need {n_pred + args.batch_size} (more --records)")
    source = None
    if le:  # one set of predictors for every process
        source = wl.train_predictors(config, args.model, rows[:n_pred]) if info.main else None
        source = ddp.broadcast(source, info)  # wl.trainer moves it to the device
    t = wl.trainer(config, args.model, args.method, args.seq_len, source=source,
                   mode="le" if le else args.attn, data=rows[n_pred:][:1], device=device)
    batches = ft.batches(rows[n_pred:], args.batch_size, args.steps)
    step, losses = 0, []
    run = {"model": args.model, "method": args.method, "mode": args.mode, "attn": args.attn,
           "seq_len": args.seq_len, "batch_size": args.batch_size, "seed": args.seed}
    if state is not None:
        for key, value in run.items():
            if state["run"].get(key) != value:
                raise BenchlabError(f"{state_path}: run.{key}: the saved run has "
                                    f"{state['run'].get(key)!r}, this one {value!r}; "
                                    "resume with the same settings or choose a new --out")
        try:
            t.model.load_state_dict(state["trainable"], strict=False)
            t.opt.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise BenchlabError(f"{state_path}: trainable: does not fit this model "
                                f"({first_line(e)})") from None
        step, losses = int(state["step"]), list(state["losses"])
        if info.main:
            print(f"resuming {out} at step {step}")
    from tqdm import tqdm

    net = ddp.wrap(t.model, info, device)  # averages the trainable gradients over processes
    net.train()
    secs = []
    for i in tqdm(range(step, args.steps), desc=f"finetune {args.method} {args.mode}",
                  initial=step, total=args.steps, disable=not info.main):
        t0 = time.perf_counter()
        batch = ddp.shard(batches[i], info, "--batch-size").to(device)
        loss = ft.train_step(net, t.opt, batch)
        losses.append(float(ddp.mean(torch.tensor(loss, dtype=torch.float64), info)))
        secs.append(time.perf_counter() - t0)
        if info.main and ((i + 1) % args.save_every == 0 or i + 1 == args.steps):
            trainable = {n: p.detach() for n, p in t.model.named_parameters() if p.requires_grad}
            torch.save({"trainable": trainable, "optimizer": t.opt.state_dict(), "step": i + 1,
                        "losses": losses, "run": run}, str(state_path) + ".tmp")
            Path(str(state_path) + ".tmp").replace(state_path)
    st = ft.reduce_stats(t.stats, info) if le else None  # every process takes part
    if not info.main:
        return 0
    from . import patch
    from .documents import Docs

    patch.unpatch(t.model)  # the checkpoint is a plain dense model
    eos = ft.eos_id(ft.tokenizer_for(args.model))
    docs = [Docs(b, eos) for b in batches[:args.steps]]
    dens = {"density_doc": sum(d.density(16) for d in docs) / len(docs),
            "documents_per_row": sum(d.count() for d in docs) / len(docs)}
    if le:  # densities over this run's steps (a resumed run: the steps after resuming)
        dens.update(density_steps=args.steps - step, **wl.densities(st),
                    layer_density_attn=st.layer_densities("attn"),
                    layer_density_doc=st.layer_densities("doc"),
                    layer_density_mlp=st.layer_densities("mlp"))
    meta = {**run, "steps": args.steps, "lr": args.lr, "data": str(data),
            "held_out_rows": n_pred, "train_rows": f"packed rows {n_pred}.. in order",
            "processes": info.world, "device": device, **dens}
    ckpt = ft.save_checkpoint(t.model, out / "checkpoint", method=args.method, meta=meta)
    ft.hf_tokenizer(args.model).save_pretrained(ckpt)
    (out / "losses.json").write_text(json.dumps({"losses": losses, **meta,
                                                 "step_seconds": secs}, indent=1) + "\n")
    print(f"final loss {losses[-1]:.4f}; checkpoint {ckpt}")
    if args.method in ("full", "lora", "bitfit"):  # a plain transformers checkpoint
        print(f"evaluate with: benchlab long-exposure lm-eval --checkpoint {ckpt}")
    return 0


def cmd_lm_eval(args) -> int:
    """Evaluate a checkpoint with lm_eval's Python API (accuracy.evaluate); writes the results
    JSON (accuracy and stderr per task, the checkpoint's provenance, the lm_eval version)."""
    from . import accuracy

    ckpt = Path(args.checkpoint)
    accuracy.provenance(ckpt)  # a missing or adapter checkpoint fails before anything runs
    default = TASKS if args.print_command else (accuracy.ZOO_TASK,)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else default
    if args.print_command:
        print(lm_eval_command(ckpt, tasks, args.batch_size, args.device or "cuda:0"))
        return 0
    import torch

    device = args.device or ("cuda:0" if torch.cuda.is_available() else "cpu")
    result = accuracy.evaluate(ckpt, tasks, limit=args.limit, batch_size=args.batch_size,
                               device=device, n_docs=args.n_docs)
    out = Path(args.out) if args.out else ckpt / "lm_eval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out)
    for name, r in result["tasks"].items():
        print(f"{name}: acc {r['acc']:.4f} +- {r['acc_stderr']:.4f} (n={r['n']})")
    print(f"wrote {out}")
    return 0


def cmd_accuracy(args) -> int:
    """Table IV (accuracy.table): LoRA (or --method) fine-tuning in dense and in LE mode on the
    same packed rows (finetune's pairing), then lm_eval on the base model and both checkpoints
    with per-sample logging; writes OUT/accuracy.{json,md} and nothing else there. The runs and
    evaluations go to --work (default: the benchlab cache, keyed by the training settings and
    the code version). Resumable: a finished checkpoint (WORK/<mode>/checkpoint) or evaluation
    (WORK/eval/<mode>.json with the same settings and weights) is kept; an interrupted
    fine-tuning run resumes from its train_state.pt."""
    import os
    import shutil

    import torch
    from tqdm import tqdm

    from benchlab import zoo
    from benchlab.core import ddp
    from benchlab.core.provenance import code_version, config_hash

    from . import accuracy

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not tasks:
        raise BenchlabError("--tasks: no task given")
    _, device = ddp.placement(args.device, os.environ, torch.cuda.is_available())
    train = {k: getattr(args, k) for k in ("model", "method", "steps", "seq_len", "batch_size",
                                           "lr", "records", "data", "scale", "seed")}
    code = code_version(__file__)
    work = Path(args.work) if args.work else (zoo.cache_dir() / "long_exposure" / "accuracy"
                                              / config_hash({**train, "code": code}))
    print(f"runs and evaluations in {work}")
    stages = ["finetune dense", "finetune le", "eval base", "eval dense", "eval le"]
    bar = tqdm(stages, desc="accuracy")
    ckpts = {}
    for mode in ("dense", "le"):
        bar.set_description(f"accuracy: finetune {mode}")
        run = work / mode
        ckpts[mode] = run / "checkpoint"
        if not (ckpts[mode] / "config.json").is_file():
            if run.is_dir() and {p.name for p in run.iterdir()} <= {"e2e.jsonl"}:
                shutil.rmtree(run)  # stopped before its first state: nothing to resume
            ns = argparse.Namespace(**{**vars(args), "command": "finetune", "mode": mode,
                                       "attn": "sdpa", "save_every": max(1, args.steps // 5),
                                       "resume": (run / "train_state.pt").is_file(),
                                       "out": str(run)})
            cmd_finetune(ns)
        bar.update()
    ckpts = {"base": accuracy.save_base(args.model, work / "base"), **ckpts}
    evals = {}
    for mode, ckpt in ckpts.items():
        bar.set_description(f"accuracy: eval {mode}")
        evals[mode] = accuracy.evaluate_once(
            ckpt, work / "eval" / f"{mode}.json", tasks, limit=args.limit,
            batch_size=args.eval_batch_size, device=device, n_docs=args.n_docs)
        bar.update()
    bar.close()
    result = accuracy.table(evals, {**train, "tasks": tasks, "limit": args.limit,
                                    "n_docs": args.n_docs, "device": device,
                                    "code_version": code, "work": str(work),
                                    "inputs": zoo.artifact_inputs(args.model)})
    for name in tasks:
        for mode, x in result["models"].items():
            t = x["tasks"][name]
            print(f"{name} {mode}: acc {t['acc']:.4f} +- {t['acc_stderr']:.4f} (n={t['n']})")
        for pair, t in result["tests"][name].items():
            print(f"{name} {pair}: McNemar p = {t['p']:.3g}")
    for path in accuracy.write(result, args.out):
        print(f"wrote {path}")
    return 0


def cmd_model_step(args) -> int:
    """LoRA step of the scale's step_model: LE vs dense SDPA / eager, rounds interleaved, one
    torch thread unless --threads; prints one JSON line (measure.model_step_run, as the bench
    test_model_step, which measures the same trainers under pytest-benchmark)."""
    from ..core.timing import Timer
    from . import CONFIGS, Case
    from . import workload as wl
    from .measure import STEP_DENSE, flex_speedups, model_step_run

    cfg = CONFIGS[args.scale]
    if cfg.step_model is None and args.model is None:
        raise BenchlabError(f"--scale: {args.scale} has no step_model; pass --model")
    model = args.model or cfg.step_model
    init = args.init or cfg.step_init
    from ..core.stats import paired_ratio_ci, paired_ttest

    cfg = dataclasses.replace(cfg, step_rounds=args.rounds)
    case = Case("cli", "model_step", model, args.seq_len, masks=args.masks, density=args.density,
                init=init)
    with threads(args.threads):
        be, ts, mem, times = model_step_run(case, cfg, Timer(None, args.device))
    t = {**wl.speedups({k: times[k] for k in ("le", *STEP_DENSE)}), **flex_speedups(times)}
    st = ts["le"].stats
    tests = {}
    les = ("le", "le_flex") if "le_flex" in times else ("le",)  # le_flex: CUDA only
    for le, k in itertools.product(les, STEP_DENSE):  # per-round ratios: interval, paired t
        name = f"speedup_{k}" if le == "le" else f"flex_speedup_{k}"
        tests[f"{name}_ci"] = list(paired_ratio_ci(times[k], times[le]))
        tests[f"{name}_p"] = paired_ttest(times[k], times[le])[1]
    result = {"model": model, "init": init, "seq_len": args.seq_len, "masks": args.masks,
              "device": args.device, "machine": machine.facts(),
                      "density": args.density if args.masks == "synthetic" else None, **t,
                      **tests, "t_le_dispatch": float(np.median(times["le_dispatch"])),
                      "dispatch_speedup_sdpa": float(np.median(np.divide(
                          times["sdpa"], times["le_dispatch"]))),
                      "break_even_attn": be["attn"], "break_even_mlp": be["mlp"],
                      "memory_ratio": mem["le"] / mem["sdpa"],
                      "memory_ratio_sdpa_docs": mem["le"] / mem["sdpa_docs"],
                      "memory_ratio_eager": mem["le"] / mem["eager"],
                      "density_attn": st.density("attn"), "density_doc": st.density("doc"),
                      "density_mlp": st.density("mlp"), "keeps_everything": st.keeps_everything(),
                      "layer_density_attn": st.layer_densities("attn"),
                      "layer_density_mlp": st.layer_densities("mlp"),
                      "break_even_curves": {k: {str(d): r for d, r in be[f"{k}_curve"].items()}
                                            for k in ("attn", "mlp")},
                      "rounds": args.rounds, "threads": args.threads,
                      "times": {k: list(v) for k, v in times.items()}}
    line = json.dumps(result)
    print(line)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        tmp.replace(out)
        out.with_suffix(".md").write_text(model_step_md(result))
    return 0


def model_step_md(r: dict) -> str:
    """One sentence per claim of a model-step result, with its interval and p-value."""
    def claim(base, goal=None, le="LE"):
        key = f"speedup_{base}" if le == "LE" else f"flex_speedup_{base}"
        lo, hi = r[f"{key}_ci"]
        shown = "a gain, shown" if lo > 1.0 else (f"{le} slower (interval below 1)" if hi < 1.0
                                                  else "a difference not shown at this scale")
        g = f" (goal >= {goal}x: {'met' if lo >= goal else 'not met'})" if goal else ""
        return (f"- {le} vs {base}: {r[key]:.2f}x, 95% bootstrap interval of the median "
                f"per-round ratio [{lo:.2f}, {hi:.2f}], paired t-test p = {r[f'{key}_p']:.2g}: "
                f"{shown}{g}.")
    keeps = " (the masks keep everything)" if r["keeps_everything"] else ""
    gpu = r.get("machine", {}).get("gpu")
    where = ("a shared 2-core machine under contention" if r.get("device", "cpu") == "cpu"
             else f"{r['device']} ({gpu})" if gpu else r["device"])
    return "\n".join([
        f"LoRA step of {r['model']} (init {r['init']}) at L={r['seq_len']} on one packed row, "
        f"masks {r['masks']}, {r['threads']} thread, {r['rounds']} rotated rounds, attention "
        f"inside documents in every mode. Measured on {where}.",
        "",
        f"Densities LE ran at: attention {r['density_attn']:.3f} of causal blocks (documents "
        f"alone {r['density_doc']:.3f}), MLP {r['density_mlp']:.3f}{keeps}.",
        f"Step seconds (medians): LE {r['t_le']:.2f}, dense SDPA with document mask "
        f"{r['t_sdpa']:.2f}, per-document SDPA {r['t_sdpa_docs']:.2f}, eager {r['t_eager']:.2f}, "
        f"LE dispatched {r['t_le_dispatch']:.2f}.",
        "", claim("sdpa", 1.5), claim("sdpa_docs"), claim("eager"),
        *([claim("sdpa", 1.5, "LE through FlexAttention"),
           claim("sdpa_docs", le="LE through FlexAttention")] if "flex_speedup_sdpa" in r else []),
        "",
        f"- Dispatched at the break-even densities measured in this run (attention "
        f"{r['break_even_attn']:.2f}, MLP {r['break_even_mlp']:.2f}): "
        f"{r['dispatch_speedup_sdpa']:.2f}x dense SDPA.",
        f"- Memory: LE / dense SDPA {r['memory_ratio']:.2f} (goal <= 0.8: "
        f"{'met' if r['memory_ratio'] <= 0.8 else 'not met'}), LE / per-document SDPA "
        f"{r['memory_ratio_sdpa_docs']:.2f}, LE / eager {r['memory_ratio_eager']:.2f}.", ""])


def cmd_attn_study(args) -> int:
    """Attention implementations on a packed row, side by side (attn_study.py); writes
    attn_study.{json,md} under --out."""
    from . import attn_study

    with threads(args.threads):
        result = attn_study.run(args.seq_len, rounds=args.rounds, flex=not args.no_flex,
                                flex_block=args.flex_block)
    for path in attn_study.write(result, args.out):
        print(f"wrote {path}")
    return 0


EVAL_METHODS = ("full", "lora", "bitfit")  # checkpoints lm_eval's hf model loads


def training_args(p, methods) -> None:
    """The fine-tuning options `finetune` and `accuracy` share."""
    p.add_argument("--model", default="opt-tiny", help="zoo name or local directory "
                   "(default: %(default)s; paper: opt-350m, opt-1.3b, opt-2.7b)")
    p.add_argument("--method", choices=methods, default="lora", help="(default: %(default)s)")
    p.add_argument("--seq-len", type=bounded(int, lo=1), default=512,
                   help="packed row length, a multiple of 16 (default: %(default)s)")
    p.add_argument("--steps", type=bounded(int, lo=1), default=100,
                   help="(default: %(default)s)")
    p.add_argument("--batch-size", type=bounded(int, lo=1), default=1,
                   help="global batch; under torchrun split over the processes, a multiple "
                   "of their number (default: %(default)s)")
    p.add_argument("--lr", type=float, default=1e-3, help="(default: %(default)s)")
    p.add_argument("--data", help="E2E-style JSONL (default: generate --records into --out)")
    p.add_argument("--records", type=bounded(int, lo=1), default=5000,
                   help="generated records when --data is not given (default: %(default)s)")
    p.add_argument("--scale", choices=("tiny", "small", "paper"), default="tiny",
                   help="predictor settings of this scale's config (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: cuda when available; under torchrun on CUDA one GPU per process "
                   "(cuda:LOCAL_RANK, nccl), on CPU gloo (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    from .accuracy import ZOO_TASK
    from .peft_methods import ATTN_IMPLS, METHODS

    parser = argparse.ArgumentParser(prog="benchlab long-exposure", description=__doc__.split(
        "\n\n")[0], epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse
        .RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("records", help="write seeded E2E-style JSONL records")
    rec.add_argument("--n", type=bounded(int, lo=1), default=2000, help="(default: %(default)s)")
    rec.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    rec.add_argument("--out", required=True, help="JSONL path (must not exist)")
    ft = sub.add_parser("finetune", help="fine-tune OPT with a PEFT method, dense or LE")
    training_args(ft, METHODS)
    ft.add_argument("--mode", choices=("dense", "le"), default="le",
                    help="dense or Long Exposure (default: %(default)s)")
    ft.add_argument("--attn", choices=ATTN_IMPLS, default="sdpa",
                    help="dense attention implementation (default: %(default)s)")
    ft.add_argument("--save-every", type=bounded(int, lo=1), default=50,
                    help="steps between resumable states (default: %(default)s)")
    ft.add_argument("--resume", action="store_true", help="continue from --out/train_state.pt")
    ft.add_argument("--out", required=True, help="new output directory")
    ac = sub.add_parser("accuracy", help="Table IV: fine-tune dense and LE on the same rows, "
                        "evaluate base, dense and LE with lm_eval, write accuracy.{json,md}")
    training_args(ac, EVAL_METHODS)
    ac.add_argument("--tasks", default=ZOO_TASK,
                    help="comma-separated lm_eval tasks (default: %(default)s, offline; paper: "
                    + ",".join(TASKS) + ")")
    ac.add_argument("--limit", type=bounded(int, lo=1), help="documents per task (default: all)")
    ac.add_argument("--n-docs", type=bounded(int, lo=1), default=200,
                    help="zoo_cloze documents (default: %(default)s)")
    ac.add_argument("--eval-batch-size", type=bounded(int, lo=1), default=8,
                    help="lm_eval batch size (default: %(default)s)")
    ac.add_argument("--work", help="directory for the fine-tuning runs and evaluations; an "
                    "existing one resumes, finished parts kept (default: under the benchlab "
                    "cache, keyed by the training settings and the code version)")
    ac.add_argument("--out", required=True, help="directory for accuracy.{json,md}")
    ev = sub.add_parser("lm-eval", help="evaluate a saved checkpoint with lm-evaluation-harness")
    ev.add_argument("--checkpoint", required=True, help="OUT/checkpoint of a finetune run")
    ev.add_argument("--tasks", help="comma-separated: zoo_cloze (offline, built from zoo text) "
                    "or the paper's " + ",".join(TASKS) + " (hub or local HF datasets cache) "
                    "(default: zoo_cloze; with --print-command the paper's)")
    ev.add_argument("--limit", type=bounded(int, lo=1), help="documents per task (default: all)")
    ev.add_argument("--n-docs", type=bounded(int, lo=1), default=200,
                    help="zoo_cloze documents (default: %(default)s)")
    ev.add_argument("--batch-size", type=bounded(int, lo=1), default=8,
                    help="(default: %(default)s)")
    ev.add_argument("--device", help="(default: cuda:0 if available, else cpu)")
    ev.add_argument("--out", help="results JSON (default: CHECKPOINT/lm_eval.json)")
    ev.add_argument("--print-command", action="store_true",
                    help="only print the lm_eval command line (the paper tasks on a GPU)")
    ms = sub.add_parser("model-step", help="time a LoRA step, LE vs dense SDPA / eager")
    ms.add_argument("--scale", choices=("tiny", "small", "paper"), default="small",
                    help="config whose step_model / exposer settings are used "
                    "(default: %(default)s)")
    ms.add_argument("--model", help="zoo name (default: the scale's step_model)")
    ms.add_argument("--init", choices=("trained", "random"),
                    help="base model (default: the scale's step_init)")
    ms.add_argument("--seq-len", type=bounded(int, lo=1), default=1024,
                    help="(default: %(default)s)")
    ms.add_argument("--masks", choices=("exposed", "synthetic"), default="exposed",
                    help="exposer masks of the batch, or random at --density "
                    "(default: %(default)s)")
    ms.add_argument("--density", type=bounded(float, lo=0, hi=1), default=0.25,
                    help="synthetic block density (default: %(default)s)")
    ms.add_argument("--rounds", type=bounded(int, lo=1), default=3,
                    help="(default: %(default)s)")
    ms.add_argument("--threads", type=bounded(int, lo=1), default=1,
                    help="torch threads (default: %(default)s)")
    ms.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="(default: %(default)s)")
    ms.add_argument("--out", help="also write the result JSON here (atomically)")
    at = sub.add_parser("attn-study", help="attention on packed rows: SDPA (document mask), "
                        "per-document SDPA, eager, LE operator, FlexAttention")
    at.add_argument("--seq-len", type=bounded(int, lo=1), default=1024,
                    help="packed row length, a multiple of 128 (default: %(default)s)")
    at.add_argument("--rounds", type=bounded(int, lo=1), default=7,
                    help="(default: %(default)s)")
    at.add_argument("--threads", type=bounded(int, lo=1), default=1,
                    help="torch threads (default: %(default)s)")
    at.add_argument("--no-flex", action="store_true", help="skip FlexAttention (no compile)")
    at.add_argument("--flex-block", type=bounded(int, lo=1),
                    help="FlexAttention BlockMask tile (default: 32 on CPU, 128 on CUDA)")
    at.add_argument("--out", required=True, help="directory for attn_study.{json,md}")
    dd = sub.add_parser("ddp-scaling", help="Fig 14 on CPU: LoRA fine-tuning under torchrun "
                        "with 1 and N gloo processes, same global batch, dense and LE")
    dd.add_argument("--procs", type=bounded(int, lo=1), nargs="+", default=[1, 2],
                    help="process counts, 1 first (default: %(default)s)")
    dd.add_argument("--repeats", type=bounded(int, lo=1), default=4,
                    help="(default: %(default)s)")
    dd.add_argument("--model", default="opt-tiny", help="(default: %(default)s)")
    dd.add_argument("--seq-len", type=bounded(int, lo=16), default=256,
                    help="(default: %(default)s)")
    dd.add_argument("--steps", type=bounded(int, lo=2), default=8, help="(default: %(default)s)")
    dd.add_argument("--batch-size", type=bounded(int, lo=1), default=4,
                    help="global batch (default: %(default)s)")
    dd.add_argument("--records", type=bounded(int, lo=1), default=400,
                    help="(default: %(default)s)")
    dd.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="cpu: gloo, one thread per process; cuda: nccl, one GPU per process "
                    "(default: %(default)s)")
    dd.add_argument("--out", required=True,
                    help="directory for ddp_scaling.{json,md} and exp-scale-ddp.png")
    return parser


def cmd_ddp_scaling(args) -> int:
    """Fig 14 on CPU (ddp_scaling.py): writes ddp_scaling.{json,md}, exp-scale-ddp.png."""
    from . import ddp_scaling

    result = ddp_scaling.run(tuple(args.procs), args.repeats, args.model, args.seq_len,
                             args.steps, args.batch_size, args.records, device=args.device)
    for path in ddp_scaling.write(result, args.out):
        print(f"wrote {path}")
    return 0


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "seq_len", 16) % 16:
        raise BenchlabError(f"--seq-len: {args.seq_len} is not a multiple of 16")
    return {"records": cmd_records, "finetune": cmd_finetune, "lm-eval": cmd_lm_eval,
            "accuracy": cmd_accuracy,
            "model-step": cmd_model_step, "attn-study": cmd_attn_study,
            "ddp-scaling": cmd_ddp_scaling}[
        args.command](args)
