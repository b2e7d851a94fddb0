"""`benchlab long-exposure accuracy`: Table IV in one resumable command.

    benchlab long-exposure accuracy --out runs/table4       # tiny: opt-tiny, zoo_cloze

Dense and Long Exposure fine-tuning on the same packed rows (trainer.run), lm_eval on the base
model and both checkpoints (accuracy.evaluate_once), and the table with McNemar's exact tests
(accuracy.table, accuracy.write).
"""

import argparse
from pathlib import Path

from benchlab.core.errors import BenchlabError


def run(args) -> int:
    """Writes OUT/accuracy.{json,md} only; the runs and evaluations go to --work, where finished
    checkpoints and evaluations (same settings and weights) are kept and an interrupted
    fine-tuning run resumes from its train_state.pt."""
    import os
    import shutil

    import torch
    from tqdm import tqdm

    from benchlab import zoo
    from benchlab.core import ddp
    from benchlab.core.provenance import code_version, config_hash

    from . import accuracy, trainer

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
            trainer.run(ns)
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
