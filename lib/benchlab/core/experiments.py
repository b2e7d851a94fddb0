"""Find an experiment package by name without importing any experiment from the core.

An experiment is a module with `CONFIGS` (scale -> frozen dataclass) and
`report(records, outdir)`. Names resolve through the `benchlab.experiments` entry-point group;
a dotted module path works too (tests use that for throwaway experiments).
"""

import difflib
import importlib
import importlib.metadata as md
from types import ModuleType

from .errors import BenchlabError
from .scale import config_for

GROUP = "benchlab.experiments"


def known() -> dict[str, str]:
    return {ep.name: ep.value for ep in md.entry_points(group=GROUP)}


def load(name: str) -> ModuleType:
    target = known().get(name)
    if target is None and "." not in name:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            close = difflib.get_close_matches(name, known(), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise BenchlabError(f"unknown experiment {name!r}{hint}") from None
    return importlib.import_module(target or name)


def config(name: str, scale: str):
    module = load(name)
    return config_for(getattr(module, "CONFIGS", {}), scale, where=f"{module.__name__}.CONFIGS")


def report_all(records: list[dict], outdir) -> list[str]:
    """Hand each experiment its records (sorted by case) and a folder `outdir/<experiment>`.

    One experiment's failing report does not stop the others: its traceback is printed and a
    BenchlabError naming every failed experiment is raised at the end."""
    import sys
    import traceback
    from pathlib import Path

    by_exp: dict[str, list[dict]] = {}
    for rec in records:
        by_exp.setdefault(rec["experiment"], []).append(rec)
    failed = []
    for exp, recs in sorted(by_exp.items()):
        recs.sort(key=lambda r: (r["case"], r["config_hash"]))
        try:
            load(exp).report(recs, Path(outdir) / exp)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            failed.append(exp)
    if failed:
        raise BenchlabError(f"report failed for {', '.join(failed)} (traceback above)")
    return sorted(by_exp)
