"""`benchlab sublora analyze`: the seed's figures and tables from finished run folders.

    benchlab sublora analyze --results_dir out/sweep --output_dir reports/sublora \
        --budgets 1000 2000 --seeds 42 123 999

A run folder (any depth under --results_dir) holds `bounds_metrics.json` and the training
metadata `best_ckpt.json`, whose "config" gives d, mode, r and seed (sublora.intrinsic_dim,
allocation_mode, allocation_ratio, system.seed), with "val_loss", "step" (0: the w = 0 baseline)
and "gamma_B". Missing facts come from the bounds' saved `inputs`, then the folder name
(`d1000_fixed_bheavy_s42`, the fork's `sublora-d1000-learned-seed42`). Each run becomes a
core.session.Run record (kind "sweep", case id: the folder's path, scale "custom") for `report()`.
"""

import argparse
import re
from pathlib import Path

from ..core.errors import BenchlabError, fail, read_json
from ..core.options import input_dir, output_dir
from ..core.report import flatten
from ..core.session import Run
from . import SweepCase, mode_id
from .bounds import JSON_NAME, load_bounds_metrics
from .report import report
from .study import DIMS, SEEDS
from .verdicts import FIXED_NAMES

META_NAMES = ("best_ckpt.json", "run.json", "metadata.json")
KEYS = {  # record case field -> where a run folder holds it (metadata config, bounds inputs)
    "d": ("sublora.intrinsic_dim", "d"),
    "mode": ("sublora.allocation_mode", "mode"),
    "ratio": ("sublora.allocation_ratio", "ratio"),
    "seed": ("system.seed", "seed"),
}
METRIC_KEYS = ("bound_value", "empirical_bpd", "raw_bpd", "best_alpha", "kl_divergence",
               "compressed_size_bits", "random_guess_bpd", "non_vacuous", "top1_error",
               "top1_error_bound")


def _lookup(flat: dict, names) -> object:
    for name in names:
        for key, value in flat.items():
            if (key == name or key.endswith("." + name)) and value is not None:
                return value
    return None


def _from_dirname(name: str) -> dict:
    """d, mode, ratio, seed from d1000_learned_s42 (run-all) or sublora-d1000-learned-seed42."""
    out = {}
    if m := re.search(r"(?:^|[-_])d(?:im)?(\d+)(?:[-_]|$)", name):
        out["d"] = int(m.group(1))
    if m := re.search(r"(?:seed[-_]?|[-_]s)(\d+)$", name):
        out["seed"] = int(m.group(1))
    low = name.lower()
    for ratio, fixed in FIXED_NAMES.items():  # the fork's fixed_aheavy, fixed_equal, fixed_bheavy
        if fixed in low:
            out["mode"], out["ratio"] = "fixed", ratio
    for mode in ("uniform", "grouped", "learned", "w0"):
        if re.search(rf"(?:^|[-_]){mode}(?:[-_]|$)", low):
            out["mode"] = mode
    return out


def run_record(metrics_path: Path, root: Path) -> dict:
    """One run folder -> a record shaped like the benchmark's sweep records."""
    metrics = load_bounds_metrics(metrics_path)
    folder = metrics_path.parent
    meta_path = next((folder / n for n in META_NAMES if (folder / n).exists()), None)
    meta = read_json(meta_path, "metadata") if meta_path else {}
    inputs = metrics.get("inputs") or {}
    flat_meta, flat_inputs = flatten(meta.get("config") or {}), flatten(inputs)
    guessed = _from_dirname(folder.name)
    case = {"kind": "sweep"}
    for field, names in KEYS.items():
        value = _lookup(flat_meta, names[:1])
        value = _lookup(flat_inputs, names[1:]) if value is None else value
        case[field] = guessed.get(field) if value is None else value
    where = str(meta_path or metrics_path)
    for field in ("d", "mode"):
        if case[field] is None:
            raise fail(where, field, "not found in the metadata, the bounds inputs or the folder "
                       "name")
    if inputs.get("baseline") or meta.get("step") == 0 or guessed.get("mode") == "w0":
        case["mode"] = "w0"  # the untrained baseline: w = 0
    if case["mode"] != "fixed":
        case["ratio"] = 0.5
    elif case["ratio"] is None:
        raise fail(where, "ratio", "fixed mode, but no allocation ratio in the metadata, the "
                   "bounds inputs or the folder name")
    out = {k: metrics[k] for k in METRIC_KEYS if k in metrics}
    out["val_loss"] = meta.get("val_loss")
    out["init_from"] = flat_meta.get("model.init_from")
    gates = meta.get("gamma_B") or inputs.get("gamma_B")
    if case["mode"] == "learned" and gates:
        out["gamma_B"] = [float(g) for g in gates]
    config = meta.get("config") or {"bounds_inputs": inputs}
    return _record(folder.relative_to(root).as_posix(), case, out, config)


def _record(rel: str, case: dict, metrics: dict, config: dict) -> dict:
    """The record of one run folder, made by a core.session.Run whose config is the run's saved
    config (its YAML sections; without metadata, the bounds inputs)."""
    seed = int(case["seed"]) if case["seed"] is not None else None
    point = SweepCase(f"d{case['d']}-{mode_id(case['mode'], case['ratio'])}-s{seed}",
                      int(case["d"]), case["mode"], float(case["ratio"]), seed)
    run = Run("sublora", "custom", device="cpu", config=config)
    return run.record("sweep", point, metrics, case_id=rel)


def collect(results_dir, seeds=None) -> list[dict]:
    """Records of every run folder under results_dir (only `seeds` when given)."""
    root = Path(results_dir)
    if not root.is_dir():
        raise BenchlabError(f"{root}: --results_dir: no such directory")
    records = [run_record(p, root) for p in sorted(root.rglob(JSON_NAME))]
    if seeds:
        wanted = {int(s) for s in seeds}
        records = [r for r in records if r["config"]["case"]["seed"] in wanted]
    if not records:
        raise BenchlabError(f"{root}: --results_dir: no {JSON_NAME} found"
                            + (f" for seeds {sorted(seeds)}" if seeds else ""))
    return records


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchlab sublora analyze",
                                description="figures and tables from finished SubLoRA runs")
    p.add_argument("--results_dir", required=True, type=input_dir,
                   help="folder with the run folders")
    p.add_argument("--output_dir", default="reports/sublora", type=output_dir,
                   help="(default: %(default)s)")
    p.add_argument("--budgets", nargs="+", type=DIMS, default=None,
                   help="intrinsic dimensions to plot, e.g. 1000 2000 (default: all found)")
    p.add_argument("--seeds", nargs="+", type=SEEDS, default=None,
                   help="only runs with these seeds (default: all)")
    return p


def analyze_main(argv: list[str]) -> int:
    """Parse argv, collect the runs, write the report; return 0 (BenchlabError on bad input)."""
    args = parser().parse_args(argv)
    budgets = [b for group in args.budgets for b in group] if args.budgets else None
    seeds = [s for group in args.seeds for s in group] if args.seeds else None
    records = collect(args.results_dir, seeds)
    report(records, Path(args.output_dir), budgets=budgets)
    print(f"analyzed {len(records)} runs -> {args.output_dir}")
    return 0
