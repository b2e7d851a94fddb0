"""The fine-tuning run of `benchlab long-exposure finetune`: every input checked before anything
is written, a resumable train_state.pt every --save-every steps, the safetensors checkpoint and
losses.json; one process, or data-parallel under torchrun (core.ddp).
"""

import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchlab.core.errors import BenchlabError, first_line

from . import finetune  # by module: tests patch finetune.train_step


def read_state(path: Path) -> dict:
    """A saved train_state.pt (weights_only), checked for the fields a resume reads."""
    import pickle

    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, ValueError) as e:
        raise BenchlabError(f"{path}: train_state: unreadable ({first_line(e)[:120]})") from None
    want = {"trainable": dict, "optimizer": dict, "step": int, "losses": list, "run": dict}
    for key, kind in want.items():
        if not isinstance(state, dict) or not isinstance(state.get(key), kind):
            raise BenchlabError(f"{path}: {key}: missing or not a {kind.__name__}")
    return state


def run(args) -> int:
    """`benchlab long-exposure finetune ARGS`. Under torchrun each process trains on its rows of
    every global batch, LE predictors are trained on rank 0 and broadcast (masks are per row, so
    every process masks its rows as one process would), and only rank 0 writes."""
    import os

    from benchlab.core import ddp

    _, device = ddp.placement(args.device, os.environ, torch.cuda.is_available())
    info = ddp.setup(device)
    try:
        return train(args, info, device)
    finally:
        ddp.teardown()


def train(args, info, device: str = "cpu") -> int:
    """The fine-tuning run of `args` in this process (`info`: core.ddp's placement)."""
    from benchlab.core import ddp

    from . import CONFIGS, setups
    from .e2e import write_e2e_jsonl

    ddp.local_batch(args.batch_size, info, "--batch-size")
    le = args.mode == "le"
    setups.check_method_mode(args.method, "le" if le else args.attn)
    out = Path(args.out)
    state_path = out / "train_state.pt"
    if out.exists() and any(out.iterdir()) and not (args.resume and state_path.exists()):
        raise BenchlabError(f"{out}: output directory exists and is not empty; choose a new "
                            "--out (or --resume a run that saved train_state.pt)")
    if (out / "checkpoint").exists():
        raise BenchlabError(f"{out / 'checkpoint'}: run already finished; not overwriting")
    # every input is read and checked (by every process) before anything is written
    state = read_state(state_path) if args.resume and state_path.exists() else None
    data = Path(args.data) if args.data else out / "e2e.jsonl"
    if args.data and not data.is_file():
        raise BenchlabError(f"{data}: --data: no such file")
    # --data: text records (JSONL, E2E CSV) or the artifact's pre-tokenized JSONL
    rows = setups.data_rows(data, args.model, args.seq_len) if args.data else None
    ddp.barrier(info)  # all checked before rank 0 writes
    if info.main:
        out.mkdir(parents=True, exist_ok=True)
        if rows is None and not data.exists():
            write_e2e_jsonl(data, args.records, args.seed)
    ddp.barrier(info)
    if rows is None:
        rows = setups.data_rows(data, args.model, args.seq_len)
    config = replace(CONFIGS[args.scale], lr=args.lr, batch_size=args.batch_size,
                                 seed=args.seed)
    n_pred = config.predictor_rows  # held out of both modes: dense and LE runs pair
    if rows.shape[0] < n_pred + args.batch_size:
        raise BenchlabError(f"{data}: {rows.shape[0]} packed rows of {args.seq_len} tokens; "
                            f"need {n_pred + args.batch_size} (more --records)")
    source = None
    if le:  # one set of predictors for every process
        source = setups.train_predictors(config, args.model, rows[:n_pred]) if info.main else None
        source = ddp.broadcast(source, info)  # setups.trainer moves it to the device
    t = setups.trainer(config, args.model, args.method, args.seq_len, source=source,
                       mode="le" if le else args.attn, data=rows[n_pred:][:1], device=device)
    chunks = finetune.batches(rows[n_pred:], args.batch_size, args.steps)
    step, losses = 0, []
    settings = {"model": args.model, "method": args.method, "mode": args.mode, "attn": args.attn,
                "seq_len": args.seq_len, "batch_size": args.batch_size, "seed": args.seed}
    if state is not None:
        for key, value in settings.items():
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
        batch = ddp.shard(chunks[i], info, "--batch-size").to(device)
        loss = finetune.train_step(net, t.opt, batch)
        losses.append(float(ddp.mean(torch.tensor(loss, dtype=torch.float64), info)))
        secs.append(time.perf_counter() - t0)
        if info.main and ((i + 1) % args.save_every == 0 or i + 1 == args.steps):
            trainable = {n: p.detach() for n, p in t.model.named_parameters() if p.requires_grad}
            torch.save({"trainable": trainable, "optimizer": t.opt.state_dict(), "step": i + 1,
                        "losses": losses, "run": settings}, str(state_path) + ".tmp")
            Path(str(state_path) + ".tmp").replace(state_path)
    st = finetune.reduce_stats(t.stats, info) if le else None  # every process takes part
    if not info.main:
        return 0
    from . import patch
    from .documents import Docs

    patch.unpatch(t.model)  # the checkpoint is a plain dense model
    eos = finetune.eos_id(finetune.tokenizer_for(args.model))
    docs = [Docs(b, eos) for b in chunks[:args.steps]]
    dens = {"density_doc": sum(d.density(16) for d in docs) / len(docs),
            "documents_per_row": sum(d.count() for d in docs) / len(docs)}
    if le:  # densities over this run's steps (a resumed run: the steps after resuming)
        dens.update(density_steps=args.steps - step,
                    **setups.densities(st, ("attn", "doc", "mlp")))
    meta = {**settings, "steps": args.steps, "lr": args.lr, "data": str(data),
            "held_out_rows": n_pred, "train_rows": f"packed rows {n_pred}.. in order",
            "processes": info.world, "device": device, **dens}
    ckpt = finetune.save_checkpoint(t.model, out / "checkpoint", method=args.method, meta=meta)
    finetune.hf_tokenizer(args.model).save_pretrained(ckpt)
    (out / "losses.json").write_text(json.dumps({"losses": losses, **meta,
                                                 "step_seconds": secs}, indent=1) + "\n")
    print(f"final loss {losses[-1]:.4f}; checkpoint {ckpt}")
    if args.method in ("full", "lora", "bitfit"):  # a plain transformers checkpoint
        print(f"evaluate with: benchlab long-exposure lm-eval --checkpoint {ckpt}")
    return 0
