"""One run of one experiment: the role of pytest-benchmark's session, for every front end.

    run = Run("layer_selection", scale="tiny", store=".benchlab/store.jsonl")
    for kind, case in run.pending():             # the cases not yet in the store
        run.save(run.measure(kind, case))        # measure -> record -> one fsync'd store line
    run.report(".benchlab/reports")              # the experiment's tables and figures

The pytest plugin, the asv classes and every experiment CLI produce records through a `Run`, so
any run can be resumed (`pending`), compared (`benchlab compare`) and reported (`benchlab
report`), whichever front end made it. A package declares its kinds as data:

    KINDS = {"solve": (solve_cases, measure_solve), ...}   # kind -> (cases(config), measure)

where `measure(case, config, timer)` (or `(case, config, timer, seed)`) returns the case's
result metrics, and optionally `requires(case, config) -> reason | None` says why a case cannot
run here (paper weights absent offline): it is skipped with that reason, never faked. The record
(core.records.make_record) is built here and nowhere else.
"""

import importlib
import inspect
import random
from collections.abc import Callable, Iterable
from pathlib import Path

from . import experiments
from .errors import BenchlabError
from .provenance import to_jsonable
from .records import TIME_FIELDS, make_record, run_settings
from .store import ResultStore, record_key
from .timing import Timer, resolve_device


def kinds_of(module, *, required: bool = True) -> dict[str, tuple[Callable, Callable]]:
    """The experiment's `KINDS` (kind -> (cases, measure)): the module's own, else its package's
    `measure` module's (where the measuring functions live); if neither has any, a BenchlabError
    (or {} when not `required`)."""
    kinds = getattr(module, "KINDS", None)
    if kinds is None and hasattr(module, "__path__"):
        try:
            kinds = getattr(importlib.import_module(f"{module.__name__}.measure"), "KINDS", None)
        except ModuleNotFoundError:
            kinds = None
    if not isinstance(kinds, dict) or not kinds:
        if not required:
            return {}
        raise BenchlabError(f"{module.__name__}.KINDS: no kinds declared "
                            "(kind -> (cases(config), measure(case, config, timer)))")
    return kinds


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (what the `seed` fixture did before each test)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def time_of(benchmark) -> dict | None:
    """pytest-benchmark's statistics of a finished benchmark (TIME_FIELDS), or None."""
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    return {k: to_jsonable(getattr(stats, k)) for k in TIME_FIELDS} if stats else None


class Run:
    """The run state of one experiment at one scale: config, cases, keys, records, store.

    `device` is "auto", "cpu" or "cuda" (resolved here: "cuda" without CUDA is a BenchlabError);
    `threads` sets torch's intra-op threads when > 0 (None or 0 keep the current count, which is
    recorded either way); `store` is a result store path, or None for records kept in memory
    only; `config` replaces the scale's config (a CLI's options applied to it); `budget` is
    "full" or "smoke" (core.scale.BUDGETS, the package's `smoke(config)`); `extra_code` are
    source files whose version the records carry (the bench module under pytest); `settings`
    are more run settings that belong to the key (steady_heap)."""

    def __init__(self, experiment: str, scale: str = "tiny", *, device: str = "auto",
                 seed: int = 0, threads: int | None = None, store=None, config=None,
                 budget: str = "full", extra_code: Iterable[str] = (), **settings):
        self.experiment = experiment
        self.module = experiments.load(experiment)
        self.scale = scale
        self.budget = budget
        # a CLI passes the scale's config with its options applied (dataclasses.replace)
        self.config = experiments.config(experiment, scale, budget) if config is None else config
        if budget != "full":  # records say which budget made them: never compared across
            settings = {"budget": budget, **settings}
        self.device = resolve_device(device)
        self.seed = seed
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.store = ResultStore(store) if store is not None else None
        self.extra_code = tuple(str(p) for p in extra_code)
        self.settings = settings
        self._done: set[tuple] | None = None
        self.made: list[dict] = []  # records measured (or resumed) by this run, in order

    def __repr__(self) -> str:
        return f"Run({self.experiment!r}, scale={self.scale!r}, device={self.device!r})"

    # -- cases ------------------------------------------------------------------------------
    @property
    def kinds(self) -> dict[str, tuple[Callable, Callable]]:
        return kinds_of(self.module)

    def _kind(self, kind: str) -> tuple[Callable, Callable]:
        if kind not in self.kinds:
            raise BenchlabError(f"{self.experiment}: unknown kind {kind!r} "
                                f"(kinds: {', '.join(self.kinds)})")
        return self.kinds[kind]

    def cases(self, kind: str) -> list:
        """The kind's cases at this scale, in the package's order."""
        return list(self._kind(kind)[0](self.config))

    def all_cases(self, kinds: Iterable[str] | None = None) -> list[tuple[str, object]]:
        return [(k, c) for k in (kinds or self.kinds) for c in self.cases(k)]

    # -- records ----------------------------------------------------------------------------
    def record(self, kind: str, case, metrics: dict | None = None, time: dict | None = None,
               *, params: dict | None = None, case_id: str | None = None) -> dict:
        """The record of `case` with `metrics` (without them: its key). The key covers the case
        and any other `params`, the config, the digests of the case's inputs (the package's
        `inputs(case, config)`), the seed, device, threads and settings, and the code.
        `case_id` overrides the case's own id (pytest's, when more than `case` is parametrized)."""
        import torch  # the thread count matters to every CPU result, so it is always known

        params = {**({"case": case} if case is not None else {}), **(params or {})}
        inputs_of = getattr(self.module, "inputs", None)
        inputs = inputs_of(case, self.config) if inputs_of and case is not None else {}
        run = run_settings(seed=self.seed, device=self.device, threads=torch.get_num_threads(),
                           **self.settings)
        case_id = case_id_of(case) if case_id is None else case_id
        return make_record(self.experiment, kind, case_id, metrics or {},
                           scale=self.scale, params=params, config=self.config, inputs=inputs,
                           run=run, module_file=self.module.__file__, extra_code=self.extra_code,
                           time=time)

    def key(self, kind: str, case, params: dict | None = None) -> tuple:
        """What identifies the case's result in the store (core.store.KEY_FIELDS)."""
        return record_key(self.record(kind, case, params=params))

    def missing(self, case) -> str | None:
        """Why `case` cannot run here (the package's `requires(case, config)`: weights absent
        offline, say), or None. Front ends skip such a case with that reason."""
        requires = getattr(self.module, "requires", None)
        return requires(case, self.config) if requires is not None else None

    def metrics(self, kind: str, case, timer: Timer | None = None) -> dict:
        """The case's result metrics: the kind's measuring function, RNGs seeded first."""
        measure = self._kind(kind)[1]
        timer = timer or Timer(None, self.device)
        seed_everything(self.seed)
        if "seed" in inspect.signature(measure).parameters:
            return measure(case, self.config, timer, self.seed)
        return measure(case, self.config, timer)

    def measure(self, kind: str, case, timer: Timer | None = None) -> dict:
        """Measure one case and return its record (not stored: `save` it)."""
        metrics = self.metrics(kind, case, timer)
        return self.record(kind, case, to_jsonable(metrics),
                           time_of(getattr(timer, "benchmark", None)))

    # -- the store --------------------------------------------------------------------------
    def save(self, record: dict) -> dict:
        """Append `record` to the store (fsync'd) and to this run's records."""
        if self.store is not None:
            self.store.append(record)
            if self._done is not None:
                self._done.add(record_key(record))
        self.made.append(record)
        return record

    def done(self, kind: str, case) -> bool:
        """Is this case's current key in the store? (The store is read once per run.)"""
        if self.store is None:
            return False
        if self._done is None:
            self._done = set(self.store.latest())
        return self.key(kind, case) in self._done

    def pending(self, kinds: Iterable[str] | None = None) -> list[tuple[str, object]]:
        """The (kind, case) pairs whose current key is not in the store."""
        return [(k, c) for k, c in self.all_cases(kinds) if not self.done(k, c)]

    def stored(self, kinds: Iterable[str] | None = None) -> list[dict]:
        """The store's records of this run's current cases (resume: what is already done)."""
        if self.store is None:
            return []
        latest = self.store.latest()
        keys = [self.key(k, c) for k, c in self.all_cases(kinds)]
        return [latest[key] for key in keys if key in latest]

    def run(self, kinds: Iterable[str] | None = None, *, resume: bool = True,
            progress: bool = True) -> list[dict]:
        """Measure and save every case (only the pending ones under `resume`), with a progress
        bar; the records of all the run's cases, stored ones included."""
        from tqdm.auto import tqdm

        kinds = list(kinds or self.kinds)
        todo = self.pending(kinds) if resume else self.all_cases(kinds)
        for kind, case in tqdm(todo, desc=f"{self.experiment} ({self.scale})", unit="case",
                               disable=not progress or not todo):
            reason = self.missing(case)
            if reason:
                tqdm.write(f"{self.experiment}: {kind}[{case_id_of(case)}] skipped: {reason}")
                continue
            self.save(self.measure(kind, case))
        return self.stored(kinds) if self.store is not None else list(self.made)

    def report(self, outdir, records: list[dict] | None = None) -> Path:
        """The experiment's report of `records` (default: this run's stored cases) under
        `outdir/<experiment>`."""
        records = self.stored() if records is None else records
        if not records:
            raise BenchlabError(f"{self.experiment}: no records to report")
        experiments.report_all(records, outdir)
        return Path(outdir) / self.experiment


def case_id_of(case) -> str:
    """A case's id: its `id` field or key, else its str."""
    if isinstance(case, dict) and "id" in case:
        return str(case["id"])
    return str(getattr(case, "id", case))
