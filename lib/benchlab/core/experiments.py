"""Find an experiment package by name without importing any experiment from the core.

An experiment is a module with `CONFIGS` (scale -> frozen dataclass), `report(records, outdir)`
and `METRICS` (metric name or pattern -> tolerance, for `benchlab compare`). Names resolve only
through the `benchlab.experiments` entry-point group, so a results file can never choose which
module is imported; $BENCHLAB_EXPERIMENTS ("name=module,name=module") adds throwaway experiments
for tests, set by whoever runs the process.
"""

import functools
import importlib
import importlib.metadata as md
import os
from types import ModuleType

from .errors import BenchlabError
from .registry import Registry
from .scale import check_budget, config_for

GROUP = "benchlab.experiments"


def _registry() -> Registry:
    reg = Registry("experiment")
    for ep in md.entry_points(group=GROUP):
        reg.add(ep.name, ep.value)
    for item in filter(None, os.environ.get("BENCHLAB_EXPERIMENTS", "").split(",")):
        name, _, target = item.partition("=")
        reg.add(name.strip(), target.strip())
    return reg


def known() -> dict[str, str]:
    return dict(_registry().items())


@functools.cache
def _load(name: str, target: str) -> ModuleType:
    return importlib.import_module(target)


def load(name: str) -> ModuleType:
    """The registered experiment package; an unknown name is a BenchlabError with "did you mean"."""
    return _load(name, _registry().get(name))


def config(name: str, scale: str | None = None, budget: str = "full"):
    """The experiment's config at `scale` (default: $BENCHLAB_SCALE, else tiny; asv reads it so)
    and budget: "smoke" is the package's `smoke(config)`, the same code paths cut to the least
    work that runs them; a package without one has no smoke budget (a BenchlabError)."""
    scale = scale or os.environ.get("BENCHLAB_SCALE", "tiny")
    module = load(name)
    cfg = config_for(getattr(module, "CONFIGS", {}), scale, where=f"{module.__name__}.CONFIGS")
    if check_budget(budget) == "full":
        return cfg
    smoke = getattr(module, "smoke", None)
    if smoke is None:
        raise BenchlabError(f"{module.__name__}: no smoke budget (define smoke(config))")
    return smoke(cfg)


def report_all(records: list[dict], outdir) -> list[str]:
    """Hand each experiment its records (sorted by case) and a folder `outdir/<experiment>`.

    One experiment's failing report does not stop the others: its traceback is printed and a
    BenchlabError naming every failed experiment is raised at the end."""
    import sys
    import traceback
    from pathlib import Path

    from .errors import BenchlabError
    from .report import write_provenance

    by_exp: dict[str, list[dict]] = {}
    for rec in records:
        by_exp.setdefault(rec["experiment"], []).append(rec)
    modules = {exp: load(exp) for exp in sorted(by_exp)}  # unknown names fail before any report
    failed = []
    for exp, module in modules.items():
        recs = sorted(by_exp[exp], key=lambda r: (r["case"], r["config_hash"]))
        try:
            module.report(recs, Path(outdir) / exp)
            write_provenance(recs, Path(outdir) / exp)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            failed.append(exp)
    if failed:
        raise BenchlabError(f"report failed for {', '.join(failed)} (traceback above)")
    return sorted(by_exp)
