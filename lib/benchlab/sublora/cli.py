r"""`benchlab sublora ...`: the seed's commands (YAML configs ship in benchlab/sublora/configs/).

    benchlab sublora run-all --config-file sublora_train.yaml --results_dir out/sublora_scratch
    benchlab sublora train --config-file sublora_train.yaml --sublora.intrinsic_dim=1000 \
        --sublora.allocation_mode=learned --login.out_dir=out/d1000_learned_s42
    torchrun --standalone --nproc_per_node=2 -m benchlab.sublora.cli train \
        --config-file sublora_train.yaml
    benchlab sublora eval-bounds --model.best_checkpoint_path=out/d1000_learned_s42 \
        --bounds.bound_type=document_level [--config-file sublora_bounds.yaml]
    benchlab sublora analyze --results_dir out/sublora_scratch --output_dir reports/sublora \
        --budgets 1000 2000 --seeds 42 123 999

`train` and `eval-bounds` take any `--section.field=value` override of the YAML config.
`eval-bounds` also takes the seed's --data.openwebtext_train_eot_indices_file (the documents of
a nanoGPT-bins corpus; unused, with a note, for the synthetic corpus) and
--data.empirical_document_length_distribution_file (unused, with a note: each sampled document
is evaluated at its own length); a file given must exist. `run-all` also records each point in
RESULTS_DIR/store.jsonl (core.session.Run), for `benchlab compare`.
"""

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from ..core import ddp
from ..core.errors import BenchlabError, fail
from ..core.options import input_file
from ..core.timing import resolve_device
from . import config
from .analyze import analyze_main
from .bounds import JSON_NAME, PT_NAME
from .data import load_corpus
from .evaluate import eval_bounds
from .study import run_all_main
from .train import build_model, load_checkpoint, train


def _train(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="benchlab sublora train",
                                description="train a SubLoRA model (dotted overrides allowed)")
    p.add_argument("--config-file", "--config_file", default=None, type=input_file,
                   help="YAML config")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="nanoGPT bins folder: the override --data.dataset_dir=DIR")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    args, rest = p.parse_known_args(argv)
    if args.data_dir is not None:
        rest = [*rest, f"--data.dataset_dir={args.data_dir}"]
    cfg = config.load(args.config_file, rest)
    device = resolve_device(cfg.system.device)
    if cfg.system.threads:
        torch.set_num_threads(cfg.system.threads)
    info = ddp.setup(device)
    if info.active and device.startswith("cuda"):
        device = f"cuda:{info.local_rank}"
    try:
        _, res = train(cfg, out_dir=cfg.login.out_dir, device=device,
                       progress=not args.no_progress, dist=info)
    finally:
        ddp.teardown()
    if info.main:
        print(json.dumps({"out_dir": cfg.login.out_dir, "best_val_loss": res.best_val,
                          "best_step": res.best_step, "final_train_loss": res.losses[-1],
                          "seconds": round(res.seconds, 2)}))
    return 0


def _eval_bounds(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="benchlab sublora eval-bounds",
                                description="bound a trained SubLoRA model")
    p.add_argument("--checkpoint", default=None,
                   help="training out_dir (best_ckpt.safetensors + best_ckpt.json); "
                        "or --model.best_checkpoint_path")
    p.add_argument("--config-file", "--config_file", default=None,
                   help="YAML whose bounds section replaces the run's (optional)")
    p.add_argument("--output_dir", default=None, help="(default: the checkpoint folder)")
    args, rest = p.parse_known_args(argv)
    over = config.parse_overrides(rest)
    ckpt = args.checkpoint or over.get("model", {}).pop("best_checkpoint_path", None)
    if not ckpt:
        raise fail("command line", "--checkpoint", "missing: the training out_dir to bound")
    files = _data_files(over)
    tensors, meta = load_checkpoint(ckpt)
    saved = cfg = config.apply(config.RunConfig(), meta["config"], f"{ckpt}/best_ckpt.json")
    if args.config_file:
        bounds = asdict(config.load(args.config_file).bounds)
        cfg = config.apply(cfg, {"bounds": bounds}, args.config_file)
    cfg = config.apply(cfg, {k: v for k, v in over.items() if v}, "command line")
    cfg = _apply_data_files(cfg, files)
    config.check(cfg, "command line")
    for sec in ("model", "data", "sublora"):  # the model is the checkpoint's: only bounds change
        for key, old in asdict(getattr(saved, sec)).items():
            if getattr(getattr(cfg, sec), key) != old and key not in DATA_FILES:
                raise fail("command line", f"{sec}.{key}",
                           f"{ckpt} was trained with {old!r}; only bounds and system may change")
    out_dir = Path(args.output_dir or ckpt)
    for name in (JSON_NAME, PT_NAME):
        if (out_dir / name).exists():
            raise fail(str(out_dir / name), "bounds_metrics",
                       "already exists; results are never overwritten (choose --output_dir)")
    device = resolve_device(cfg.system.device)
    model = build_model(cfg)
    best = f"{ckpt}/best_ckpt.safetensors"
    if tensors["w"].shape != model.w.shape:
        raise fail(best, "sublora.intrinsic_dim", f"w has shape {tuple(tensors['w'].shape)}, "
                   f"the config says d = {model.w.numel()} (a checkpoint of another run?)")
    if tensors["gates"].shape != model.gates.shape:
        raise fail(best, "sublora.allocation_mode", f"{tensors['gates'].numel()} gates, "
                   f"{cfg.sublora.allocation_mode} mode has {model.gates.numel()} "
                   "(a checkpoint of another mode?)")
    with torch.no_grad():
        model.w.copy_(tensors["w"])
        model.gates.copy_(tensors["gates"])
    model.to(device)
    metrics = eval_bounds(model, load_corpus(cfg), cfg, device=device, out_dir=out_dir)
    keys = ("bound_value", "empirical_bpd", "kl_divergence", "compressed_size_bits", "best_alpha",
            "non_vacuous")
    print(json.dumps({k: metrics[k] for k in keys}))
    return 0


# the seed's data-file flags of eval_bounds: they name files, not the trained model
DATA_FILES = ("openwebtext_train_eot_indices_file", "empirical_document_length_distribution_file")


def _data_files(over: dict) -> dict:
    """The seed's --data.<file> flags taken out of the overrides, each checked to exist."""
    data = over.get("data", {})
    files = {k: data.pop(k) for k in DATA_FILES if k in data}
    for key, path in files.items():
        if path and not Path(path).is_file():
            raise fail("command line", f"--data.{key}", f"{path}: no such file")
    return {k: v for k, v in files.items() if v}


def _apply_data_files(cfg, files: dict):
    """The EOT indices define the documents of a nanoGPT-bins corpus (the ones the bound samples);
    the synthetic corpus generates its documents, and the document-level bound evaluates each at
    its own length, so the other files are accepted and not used (said on stderr)."""
    eot = files.get("openwebtext_train_eot_indices_file")
    if eot and cfg.data.dataset_dir:
        cfg = config.apply(cfg, {"data": {"openwebtext_train_eot_indices_file": eot}},
                           "command line")
    elif eot:
        print("note: --data.openwebtext_train_eot_indices_file: not used: the run trained on the "
              "zoo synthetic corpus (data.dataset_dir empty), whose document ends are known",
              file=sys.stderr)
    if files.get("empirical_document_length_distribution_file"):
        print("note: --data.empirical_document_length_distribution_file: not used: the "
              "document-level bound evaluates each sampled training document at its own length "
              "(cut to bounds.max_doc_tokens)", file=sys.stderr)
    return cfg


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    commands = {"train": _train, "eval-bounds": _eval_bounds, "eval_bounds": _eval_bounds,
                "run-all": run_all_main, "run_all": run_all_main, "analyze": analyze_main}
    if argv[0] not in commands:
        raise BenchlabError(f"sublora: unknown command {argv[0]!r}; "
                            "choose train, eval-bounds, run-all or analyze")
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    from ..cli import _guard

    sys.exit(_guard(lambda: main()))
