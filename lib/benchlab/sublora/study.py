"""`benchlab sublora run-all`: the whole sweep as the seed's run folders, resumable.

    benchlab sublora run-all --config-file sublora_train.yaml --results_dir out/sublora_scratch
    benchlab sublora analyze --results_dir out/sublora_scratch --output_dir reports/sublora

One folder per (d, mode, seed), `d{d}_{mode_id}_s{seed}`, holding the checkpoint files and
bounds_metrics.json / .pt (`w0`: the untrained baseline, bounded like every run). A bounded folder
is skipped, a killed run resumes from its last eval, nothing saved is overwritten. Each point is
also a record (core.session.Run, kind "sweep") in RESULTS_DIR/store.jsonl, for `benchlab
compare`; a bounded folder without its record gets one from its files (`folder_metrics`).
"""

import argparse
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..core.errors import BenchlabError, read_json
from ..core.options import input_dir, int_list, output_dir, path_or_name
from ..core.session import Run
from . import BASELINES, CONFIGS, MODES, STUDY_DIMS, STUDY_SEEDS, W0, Config, SweepCase, mode_id
from .bounds import JSON_NAME, load_bounds_metrics
from .config import load, parse_overrides
from .sweep import point_metrics, run_config, run_point
from .train import BEST_META, LAST

STORE_NAME = "store.jsonl"


DIMS = int_list(1, 10**9)       # intrinsic dimensions d
SEEDS = int_list(0, 2**32 - 1)  # run seeds (numpy and torch take them)


def data_dir(text: str) -> str:
    """--data-dir: '' (the zoo's synthetic corpus) or an existing folder."""
    return text if text == "" else input_dir(text)


def parse_mode(name: str) -> tuple[str, float]:
    """'fixed_bheavy' -> ('fixed', 0.8); 'fixed0.3' -> ('fixed', 0.3); 'w0' -> ('w0', 0.5)."""
    known = {mode_id(m, r): (m, r) for m, r in (W0, *BASELINES, *MODES)}
    if name in known:
        return known[name]
    if name.startswith("fixed"):
        try:
            ratio = float(name.removeprefix("fixed").lstrip("_="))
        except ValueError:
            ratio = -1.0
        if 0 <= ratio <= 1:
            return "fixed", ratio
    raise BenchlabError(f"command line: --modes: unknown mode {name!r}; choose "
                        f"{', '.join(known)} or fixed<r> with r in [0, 1]")


def folder(case: SweepCase) -> str:
    return f"d{case.d}_{mode_id(case.mode, case.ratio)}_s{case.seed}"


def scale_of(config: Config) -> str:
    """The name of the bench scale whose Config this is, else "custom" (the records' scale)."""
    return next((name for name, c in CONFIGS.items() if c == config), "custom")


def folder_metrics(out: Path, config: Config, case: SweepCase) -> dict:
    """run_point's metrics of a finished run folder, from its saved files (no train_seconds)."""
    bounds = load_bounds_metrics(out / JSON_NAME)
    meta = read_json(out / BEST_META, "checkpoint metadata")
    layout, gamma = meta.get("layout") or {}, meta.get("gamma_B") or []
    losses = torch.load(out / LAST, weights_only=True)["losses"] if (out / LAST).exists() else []
    return point_metrics(
        case, bounds, partial=True, D=layout.get("D"),
        n_groups=len(layout.get("groups") or []) or len(gamma),
        gamma_B=gamma, val_loss=meta.get("val_loss"), best_step=meta.get("step"),
        final_train_loss=losses[-1] if losses else meta.get("val_loss"),
        init_from=run_config(config, case).model.init_from)


def run_all(config: Config, results_dir, *, progress: bool = True, device: str = "cpu") -> list:
    """Run (and record) every case of `config` not yet done under results_dir; the folders."""
    root = Path(results_dir)
    run = Run("sublora", scale_of(config), device=device, config=config,
              store=root / STORE_NAME)
    cases = run.cases("sweep")
    bar = tqdm(cases, desc="sublora run-all", disable=not progress, initial=0)
    for case in bar:
        out = root / folder(case)
        bar.set_postfix_str(folder(case))
        if run.done("sweep", case):
            continue
        if (out / JSON_NAME).exists():  # bounded, but its record is missing
            m = folder_metrics(out, config, case)
        else:
            t0 = time.perf_counter()
            m = run_point(config, case, device=run.device, out_dir=out,
                          progress=None if progress else False)
            tqdm.write(f"{folder(case)}: bound {m['bound_value']:.3f} bits/token, raw bpd "
                       f"{m['raw_bpd']:.3f}, {time.perf_counter() - t0:.0f} s")
        run.save(run.record("sweep", case, m))
    return [root / folder(c) for c in cases]


def run_all_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="benchlab sublora run-all",
                                description="the sweep d x (w0 + modes) x seeds as run folders "
                                            "(other args: --section.field=value overrides)")
    p.add_argument("--config-file", "--config_file", default="sublora_train.yaml",
                   type=path_or_name,
                   help="study YAML (a path or a shipped name; default: %(default)s, the tiny "
                        "scratch study; sublora_finetune.yaml: the zoo-prior fine-tuning study)")
    p.add_argument("--results_dir", required=True, type=output_dir,
                   help="where the run folders go")
    p.add_argument("--dims", nargs="+", type=DIMS, default=None,
                   help=f"intrinsic dimensions (default: {' '.join(map(str, STUDY_DIMS))})")
    p.add_argument("--modes", nargs="+", default=None,
                   help="w0 unigram bigram uniform grouped fixed_aheavy fixed_equal fixed_bheavy "
                        "learned (default: all)")
    p.add_argument("--seeds", nargs="+", type=SEEDS, default=None,
                   help=f"run seeds (default: {' '.join(map(str, STUDY_SEEDS))})")
    p.add_argument("--data-dir", default=None, metavar="DIR", type=data_dir,
                   help="nanoGPT bins folder (train.bin, val.bin): the override "
                        "--data.dataset_dir=DIR ('' = the zoo synthetic corpus; default: the "
                        "YAML's)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    args, rest = p.parse_known_args(argv)
    if args.data_dir is not None:
        rest = [*rest, f"--data.dataset_dir={args.data_dir}"]
    over = parse_overrides(rest)  # bad override syntax fails before any run
    cfg = load(args.config_file, rest)  # and bad fields or values too
    config = Config(
        train_config=args.config_file,
        overrides=tuple(f"{s}.{k}={v}" for s, kv in over.items() for k, v in kv.items()),
        dims=tuple(d for g in args.dims for d in g) if args.dims else STUDY_DIMS,
        modes=(tuple(parse_mode(m) for m in args.modes) if args.modes
               else (W0, *BASELINES, *MODES)),
        seeds=tuple(s for g in args.seeds for s in g) if args.seeds else STUDY_SEEDS)
    if cfg.system.threads:
        torch.set_num_threads(cfg.system.threads)
    folders = run_all(config, args.results_dir, progress=not args.no_progress,
                      device=cfg.system.device)
    print(f"{len(folders)} run folders and their records ({Path(args.results_dir) / STORE_NAME})"
          f" under {args.results_dir}; next: benchlab sublora analyze --results_dir "
          f"{args.results_dir}")
    return 0
