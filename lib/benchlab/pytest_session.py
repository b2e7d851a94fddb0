"""The plugin's run-wide state (pytest-benchmark's session.py role): the options, one
core.session.Run per experiment and bench module, the cases this session made or resumed, and
what a pytest item is in benchlab's terms (its experiment, kind and case id)."""

from pathlib import Path

import pytest

from .core.errors import BenchlabError
from .core.provenance import to_jsonable
from .core.session import Run
from .core.store import ResultStore
from .core.timing import steady_heap

RESUMED, KEY = "benchlab_resumed", "benchlab_key"  # user_properties: carried back from xdist


class Session:
    """Run-wide state, registered as a plugin: options, one core.session.Run per experiment (its
    config, keys, records and store), the cases this session made or resumed."""

    def __init__(self, config, gpu: str | None = None):
        opt = config.option
        self.scale = opt.bench_scale
        self.budget = opt.bench_budget
        self.device_name = opt.bench_device
        self.reports = Path(opt.bench_reports)
        self.store = ResultStore(opt.bench_store)
        self.resume = opt.bench_resume
        self.seed = opt.bench_seed
        self.build_reports = opt.bench_report
        self.is_worker = hasattr(config, "workerinput")
        self.steady_heap = opt.bench_heap == "steady" and steady_heap()
        self.ran: set[tuple] = set()  # keys of the records this session made or resumed
        self.resumed: set[tuple] = set()
        self.gpu = gpu  # --bench-gpus: this process's GPU, part of the run settings
        self._runs: dict[tuple, Run] = {}
        self._done: set[tuple] | None = None

    @property
    def device(self) -> str:
        """The resolved device ('cpu' or 'cuda'); the option's value where it cannot resolve."""
        from .core.timing import resolve_device

        try:
            return resolve_device(self.device_name)
        except BenchlabError:
            return self.device_name

    def run_of(self, item) -> Run:
        """The Run of the item's experiment (one per experiment and bench module, whose source
        is part of the records' code version)."""
        exp, module = experiment_of(item), str(item.path)
        if (exp, module) not in self._runs:
            self._runs[exp, module] = Run(exp, self.scale, budget=self.budget,
                                          device=self.device, seed=self.seed,
                                          store=self.store.path, extra_code=(module,),
                                          steady_heap=self.steady_heap,
                                          **({"gpu": self.gpu} if self.gpu else {}))
        return self._runs[exp, module]

    def record_of(self, item, metrics=None, time=None) -> dict:
        """The record of `item` with `metrics` (Run.record); without them, its key."""
        params = dict(getattr(getattr(item, "callspec", None), "params", {}))
        case = params.pop("case", None)
        return self.run_of(item).record(kind_of(item), case, metrics, time, params=params,
                                        case_id=item_case_id(item))

    def done(self, key: tuple) -> bool:
        """Is this case already in the store? (The store is read once per session.)"""
        if self._done is None:
            self._done = set(self.store.latest())
        return key in self._done

    def pytest_runtest_logreport(self, report):
        """Collect the keys of finished and resumed cases (from xdist workers too)."""
        for name, value in report.user_properties:
            if name in (KEY, RESUMED):
                self.ran.add(tuple(value))
            if name == RESUMED:
                self.resumed.add(tuple(value))

    def pytest_terminal_summary(self, terminalreporter):
        if self.resume and not self.is_worker:
            terminalreporter.write_line(
                f"benchlab: {len(self.resumed)} cases resumed from {self.store.path}, "
                f"{len(self.ran - self.resumed)} run")

    def records(self) -> list[dict]:
        return [r for k, r in self.store.latest().items() if k in self.ran]


def kind_of(item) -> str:
    """The case kind: the `cases` marker's name less `_cases`, else the test name less `test_`."""
    mark = item.get_closest_marker("cases")
    if mark is not None:
        name = mark.args[0] if isinstance(mark.args[0], str) else mark.args[0].__name__
        return name.removesuffix("_cases")
    return (getattr(item, "originalname", None) or item.name).removeprefix("test_")


def item_case_id(item) -> str:
    callspec = getattr(item, "callspec", None)
    return callspec.id if callspec is not None else item.name


def experiment_of(item) -> str | None:
    mark = item.get_closest_marker("experiment")
    return mark.args[0] if mark else None


class UntimedBenchmark:
    """The `benchmark` fixture under `-p no:benchmark`: as with --benchmark-disable, every call
    runs its function once and no time is recorded."""

    enabled = False

    def __init__(self):
        self.extra_info = {}

    def pedantic(self, fn, args=(), kwargs=None, setup=None, rounds=1, warmup_rounds=0,
                 iterations=1):
        if setup is not None:
            args, kwargs = setup() or (args, kwargs)
        return fn(*args, **(kwargs or {}))

    def __call__(self, fn, *args, **kwargs):
        return fn(*args, **kwargs)


class WithoutBenchmark:
    """Registered only when pytest-benchmark is not loaded, so bench modules still run."""

    @pytest.fixture
    def benchmark(self):
        return UntimedBenchmark()


class Recorder:
    """Callable that collects the current case's result metrics."""

    def __init__(self):
        self.metrics: dict = {}

    def __call__(self, **metrics) -> None:
        self.update(metrics)

    def update(self, metrics: dict) -> None:
        self.metrics.update(to_jsonable(metrics))
