r"""`benchlab long-exposure ...`: the artifact's fine-tuning entry points, seed-compatible.

    benchlab long-exposure records --n 2000 --out runs/e2e.jsonl
    benchlab long-exposure finetune --model opt-tiny --method lora --mode le --seq-len 512 \
        --steps 20 --out runs/lora-le
    benchlab long-exposure lm-eval --checkpoint runs/lora-le/checkpoint
    benchlab long-exposure accuracy --out runs/table4       # Table IV at tiny: base, dense, LE
    benchlab long-exposure model-step --scale small --masks synthetic --density 0.25 --rounds 10 \
        --out runs/model_step.json     # + runs/model_step.md, runs/store.jsonl (its record)
    benchlab long-exposure attn-study --seq-len 2048 --rounds 10 --out reports/long_exposure

`finetune` trains on packed E2E-style records (generated, or --data: JSONL records, the E2E
CSV, or the artifact's pre-tokenized JSONL), dense or Long Exposure (predicted block-sparse
attention and MLP), attention always inside documents, saves a resumable state every
--save-every steps, and writes a safetensors checkpoint (LoRA merged) plus losses.json (with
the rows used and the densities the run ran at, per layer). Runs pair: the scale's first
`predictor_rows` packed rows are held out of BOTH modes (LE trains its predictors on them), so
their losses compare step by step. Under `torchrun --nproc_per_node=N -m benchlab long-exposure
finetune ...` it trains data-parallel (--batch-size is the global batch; nccl with one GPU per
process on CUDA, gloo on CPU).
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
import json
import shlex
from pathlib import Path

from benchlab.core.errors import BenchlabError
from benchlab.core.options import bounded, output_dir, output_file, text_file
from benchlab.core.store import atomic_path
from benchlab.core.timing import threads

from .accuracy import PAPER_TASKS


def lm_eval_command(checkpoint, tasks=PAPER_TASKS, batch_size: int = 8,
                    device: str = "cuda:0") -> str:
    ckpt = str(checkpoint)
    return (f"lm_eval --model hf --model_args pretrained={shlex.quote(ckpt)},dtype=float32 "
            f"--tasks {','.join(tasks)} --device {device} --batch_size {batch_size} "
            f"--output_path {shlex.quote(str(Path(ckpt) / 'lm_eval'))}")


def cmd_records(args) -> int:
    from .e2e import write_e2e_jsonl

    path = write_e2e_jsonl(args.out, args.n, args.seed)
    print(f"wrote {args.n} records to {path}")
    return 0

def cmd_finetune(args) -> int:
    """trainer.run: one process, or data-parallel under torchrun (core.ddp)."""
    from . import trainer

    if args.data:  # a file of UTF-8 text, before anything is written
        try:
            text_file(args.data)
        except argparse.ArgumentTypeError as e:
            raise BenchlabError(f"--data: {e}") from None
    if args.resume and not (Path(args.out) / "train_state.pt").is_file():
        raise BenchlabError(f"{Path(args.out) / 'train_state.pt'}: --resume: no saved state to "
                            "resume from (drop --resume to start a new run)")
    return trainer.run(args)


def cmd_lm_eval(args) -> int:
    """Evaluate a checkpoint with lm_eval's Python API (accuracy.evaluate); writes the results
    JSON (accuracy and stderr per task, the checkpoint's provenance, the lm_eval version)."""
    from . import accuracy

    ckpt = Path(args.checkpoint)
    accuracy.provenance(ckpt)  # a missing or adapter checkpoint fails before anything runs
    default = PAPER_TASKS if args.print_command else (accuracy.ZOO_TASK,)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else default
    if args.print_command:
        print(lm_eval_command(ckpt, tasks, args.batch_size, args.device or "cuda:0"))
        return 0
    import torch

    device = args.device or ("cuda:0" if torch.cuda.is_available() else "cpu")
    result = accuracy.evaluate(ckpt, tasks, limit=args.limit, batch_size=args.batch_size,
                               device=device, n_docs=args.n_docs)
    out = Path(args.out) if args.out else ckpt / "lm_eval.json"
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    for name, r in result["tasks"].items():
        print(f"{name}: acc {r['acc']:.4f} +- {r['acc_stderr']:.4f} (n={r['n']})")
    print(f"wrote {out}")
    return 0

def cmd_attn_study(args) -> int:
    """The bench's doc_attn case at one length (attn_study.py: the trained model's masks against
    per-document SDPA), recorded through Run into --out/store.jsonl; writes its tables
    doc_attn.{md,csv,tex} and doc_attn_breakeven.* under --out."""
    from dataclasses import replace

    from ..core.report import records_frame, write_table
    from ..core.session import Run
    from ..core.timing import Timer
    from . import CONFIGS
    from .attn_study import doc_attn_cases, measure_doc_attn
    from .report_timing import breakeven_table, doc_attn_table

    base = CONFIGS[args.scale]
    cfg = replace(base, ops=replace(base.ops, doc_seq_lens=(args.seq_len,),
                                    doc_rounds=args.rounds))
    case = doc_attn_cases(cfg)[0]
    session = Run("long_exposure", args.scale, config=cfg, store=Path(args.out) / "store.jsonl")
    with threads(args.threads):
        record = session.save(session.record("doc_attn", case,
                                             measure_doc_attn(case, cfg, Timer())))
    frame = records_frame([record])
    for name, table in (("doc_attn", doc_attn_table(frame)),
                        ("doc_attn_breakeven", breakeven_table(frame))):
        for path in write_table(table, args.out, name):
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
    p.add_argument("--lr", type=bounded(float, gt=0), default=1e-3, help="(default: %(default)s)")
    p.add_argument("--data", help="E2E-style JSONL (default: generate --records into --out)")
    p.add_argument("--records", type=bounded(int, lo=1), default=5000,
                   help="generated records when --data is not given (default: %(default)s)")
    p.add_argument("--scale", choices=("tiny", "small", "paper"), default="tiny",
                   help="predictor settings of this scale's config (default: %(default)s)")
    p.add_argument("--seed", type=bounded(int, lo=0), default=0, help="(default: %(default)s)")
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
    rec.add_argument("--seed", type=bounded(int, lo=0), default=0, help="(default: %(default)s)")
    rec.add_argument("--out", required=True, type=output_file, help="JSONL path (must not exist)")
    ft = sub.add_parser("finetune", help="fine-tune OPT with a PEFT method, dense or LE")
    training_args(ft, METHODS)
    ft.add_argument("--mode", choices=("dense", "le"), default="le",
                    help="dense or Long Exposure (default: %(default)s)")
    ft.add_argument("--attn", choices=ATTN_IMPLS, default="sdpa",
                    help="dense attention implementation (default: %(default)s)")
    ft.add_argument("--save-every", type=bounded(int, lo=1), default=50,
                    help="steps between resumable states (default: %(default)s)")
    ft.add_argument("--resume", action="store_true", help="continue from --out/train_state.pt")
    ft.add_argument("--out", required=True, type=output_dir, help="new output directory")
    ac = sub.add_parser("accuracy", help="Table IV: fine-tune dense and LE on the same rows, "
                        "evaluate base, dense and LE with lm_eval, write accuracy.{json,md}")
    training_args(ac, EVAL_METHODS)
    ac.add_argument("--tasks", default=ZOO_TASK,
                    help="comma-separated lm_eval tasks (default: %(default)s, offline; paper: "
                    + ",".join(PAPER_TASKS) + ")")
    ac.add_argument("--limit", type=bounded(int, lo=1), help="documents per task (default: all)")
    ac.add_argument("--n-docs", type=bounded(int, lo=1), default=200,
                    help="zoo_cloze documents (default: %(default)s)")
    ac.add_argument("--eval-batch-size", type=bounded(int, lo=1), default=8,
                    help="lm_eval batch size (default: %(default)s)")
    ac.add_argument("--work", type=output_dir,
                    help="directory for the fine-tuning runs and evaluations; an "
                    "existing one resumes, finished parts kept (default: under the benchlab "
                    "cache, keyed by the training settings and the code version)")
    ac.add_argument("--out", required=True, type=output_dir,
                    help="directory for accuracy.{json,md}")
    ev = sub.add_parser("lm-eval", help="evaluate a saved checkpoint with lm-evaluation-harness")
    ev.add_argument("--checkpoint", required=True, help="OUT/checkpoint of a finetune run")
    ev.add_argument("--tasks", help="comma-separated: zoo_cloze (offline, built from zoo text) "
                    "or the paper's " + ",".join(PAPER_TASKS) + " (hub or local HF datasets "
                    "cache) (default: zoo_cloze; with --print-command the paper's)")
    ev.add_argument("--limit", type=bounded(int, lo=1), help="documents per task (default: all)")
    ev.add_argument("--n-docs", type=bounded(int, lo=1), default=200,
                    help="zoo_cloze documents (default: %(default)s)")
    ev.add_argument("--batch-size", type=bounded(int, lo=1), default=8,
                    help="(default: %(default)s)")
    ev.add_argument("--device", help="(default: cuda:0 if available, else cpu)")
    ev.add_argument("--out", type=output_file,
                    help="results JSON (default: CHECKPOINT/lm_eval.json)")
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
    ms.add_argument("--rounds", type=bounded(int, lo=1), default=10,
                    help="rotated rounds; verdicts need >= 5 (default: %(default)s)")
    ms.add_argument("--threads", type=bounded(int, lo=1), default=1,
                    help="torch threads (default: %(default)s)")
    ms.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="(default: %(default)s)")
    ms.add_argument("--out", type=output_file,
                    help="also write the result JSON (and its .md) here, atomically; "
                    "the run's record goes to store.jsonl in this file's folder (default: "
                    ".benchlab/long_exposure/model_step/store.jsonl)")
    at = sub.add_parser("attn-study", help="attention on packed rows with the trained model's "
                        "masks: LE operator vs per-document SDPA, causal SDPA, SDPA with the "
                        "document mask; break-even in-document density")
    at.add_argument("--scale", choices=("tiny", "small", "paper"), default="tiny",
                    help="config whose ops.model and exposer settings are used "
                    "(default: %(default)s)")
    at.add_argument("--seq-len", type=bounded(int, lo=16), default=1024,
                    help="packed row length (default: %(default)s)")
    at.add_argument("--rounds", type=bounded(int, lo=1), default=10,
                    help="rotated rounds; verdicts need >= 5 (default: %(default)s)")
    at.add_argument("--threads", type=bounded(int, lo=1), default=1,
                    help="torch threads (default: %(default)s)")
    at.add_argument("--out", required=True, type=output_dir,
                    help="directory for doc_attn*.{md,csv,tex} and store.jsonl")
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
    dd.add_argument("--out", required=True, type=output_dir,
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
    if args.command in ("accuracy", "model-step"):  # table4.run (Table IV), model_step.run
        import importlib

        module = {"accuracy": "table4", "model-step": "model_step"}[args.command]
        return importlib.import_module(f".{module}", __package__).run(args)
    return {"records": cmd_records, "finetune": cmd_finetune, "lm-eval": cmd_lm_eval,
            "attn-study": cmd_attn_study, "ddp-scaling": cmd_ddp_scaling}[args.command](args)
