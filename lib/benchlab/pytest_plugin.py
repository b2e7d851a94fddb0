"""benchlab's pytest plugin: options, fixtures and hooks (registered through `pytest11`).

A benchmark module marks its experiment and names a kind of the package's `KINDS`; the plugin
parametrizes its cases, and the `measure` fixture measures one case through the experiment's
core.session.Run (the object every front end uses), so each test is one line:

    pytestmark = pytest.mark.experiment("layer_selection")

    @pytest.mark.cases("solve")          # KINDS["solve"] = (solve_cases, measure_solve)
    def test_solve(case, measure):
        measure(case)

Once the test has passed its record goes into `benchmark.extra_info` and the result store. Tests
that compute their own metrics use `record(name=value, ...)` instead of `measure`, with
`@pytest.mark.cases(NAME)` naming a function `NAME(config)` of the package. At session end each
experiment that ran gets `report(records, outdir)` with the records this session made or resumed.
"""

import argparse
import os
from pathlib import Path

import pytest

from .core import experiments, shard
from .core.errors import BenchlabError
from .core.options import bounded, choice, input_dir, output_dir
from .core.scale import BUDGETS, DEFAULT_SCALE, SCALES
from .core.session import case_id_of, kinds_of, seed_everything, time_of
from .core.store import record_key
from .pytest_session import (
    KEY,
    RESUMED,
    Recorder,
    Session,
    WithoutBenchmark,
    experiment_of,
    kind_of,
)

STASH = pytest.StashKey[Session]()


# dest -> (option, parser): parsed in pytest_configure, where a bad value is one UsageError
# line; as an argparse type, pytest would print its usage block around the message.
CHECKED = {}


def checked(group, option: str, parse, **kw) -> None:
    CHECKED[option.removeprefix("--").replace("-", "_")] = (option, parse)
    group.addoption(option, **kw)


def parse_checked(config) -> None:
    for dest, (option, parse) in CHECKED.items():
        value = getattr(config.option, dest, None)
        if isinstance(value, str):
            try:
                setattr(config.option, dest, parse(value))
            except argparse.ArgumentTypeError as e:
                raise pytest.UsageError(f"benchlab: error: argument {option}: {e}") from None


def pytest_addoption(parser):
    group = parser.getgroup("benchlab")
    checked(group, "--bench-scale", choice(*SCALES), default=DEFAULT_SCALE,
            help=f"experiment scale: {', '.join(SCALES)} (default: %(default)s)")
    checked(group, "--bench-device", choice("auto", "cpu", "cuda"), default="auto",
            help="where models run: auto, cpu, cuda (default: %(default)s)")
    checked(group, "--bench-budget", choice(*BUDGETS), default="full",
            help="full: the scale's settings; smoke: every case kind's code path with the "
                 "least work that runs it (default: %(default)s)")
    checked(group, "--bench-models", exported_dir("BENCHLAB_MODELS"), default=None, metavar="DIR",
            help="local weights: DIR/<org>--<name>/ is a save_pretrained folder for hub "
                 "id <org>/<name> (default: $BENCHLAB_MODELS; else the HF cache)")
    checked(group, "--bench-data", exported_dir("BENCHLAB_DATA"), default=None, metavar="DIR",
            help="datasets: relative data paths of the configs (SubLoRA's data/openwebtext "
                 "bins) are read under DIR (default: $BENCHLAB_DATA; else the working folder)")
    checked(group, "--bench-reports", output_dir, default=".benchlab/reports", metavar="DIR",
            help="where experiment reports are written; the committed reports/ are "
                 "refreshed only by `benchlab publish` (default: %(default)s)")
    group.addoption("--bench-store", default=".benchlab/store.jsonl", metavar="PATH",
                    help="result store, one JSON line per finished case (default: %(default)s)")
    group.addoption("--bench-resume", action="store_true", default=False,
                    help="skip cases already in the result store and report their stored record")
    group.addoption("--no-bench-resume", dest="bench_resume", action="store_false",
                    help="run every case again (default)")
    checked(group, "--bench-seed", bounded(int, lo=0, hi=2**32 - 1), default=0,
            metavar="N",
            help="base seed handed to the `seed` fixture (default: %(default)s)")
    checked(group, "--bench-threads", bounded(int, lo=0, hi=1024), default=0,
            metavar="N",
            help="torch intra-op threads for every process, 0 keeps torch's default "
                 "(default: %(default)s); use 1 per xdist worker on a small machine")
    checked(group, "--bench-heap", choice("steady", "default"), default="steady",
            help="steady: freed CPU memory stays mapped (core.timing.steady_heap), so "
                 "timings count compute, not page faults; default: the allocator's own "
                 "behaviour (default: %(default)s)")
    group.addoption("--no-bench-report", dest="bench_report", action="store_false", default=True,
                    help="do not build the experiment reports at session end")
    group.addoption("--bench-shard", default=None, metavar="I/N",
                    help="run only shard I of N of the collected cases, balanced by each case's "
                         "cost (core.shard); every job of a sweep computes the same split")
    group.addoption("--bench-gpus", default=None, metavar="0,1,...",
                    help="under xdist, worker k takes GPU k mod len(list) (CUDA_VISIBLE_DEVICES, "
                         "recorded with each result); 'all' takes every visible GPU")


def pytest_configure(config):
    config.addinivalue_line("markers",
                            "experiment(name): the benchlab experiment a test belongs to")
    config.addinivalue_line("markers", "cases(name): parametrize `case` with the experiment's "
                            "function `name(config)` for the chosen scale")
    parse_checked(config)
    if config.option.bench_threads > 0:
        import torch

        torch.set_num_threads(config.option.bench_threads)
    try:
        config.stash[SHARD] = shard.parse(config.option.bench_shard) \
            if config.option.bench_shard is not None else None
        gpu = pin_gpu(config.option.bench_gpus, getattr(config, "workerinput", {}))
    except BenchlabError as e:
        raise pytest.UsageError(str(e)) from None
    session = Session(config, gpu=gpu)
    try:
        session.store.check_writable()  # before any case runs, not after the first result
    except BenchlabError as e:
        raise pytest.UsageError(f"--bench-store: {e}") from None
    if session.device_name == "cuda":
        from .core.timing import resolve_device

        try:
            resolve_device("cuda")  # every case would be skipped: an error, not a green run
        except BenchlabError as e:
            raise pytest.UsageError(str(e)) from None
    config.stash[STASH] = session
    config.pluginmanager.register(session, "benchlab-session")
    if not config.pluginmanager.has_plugin("benchmark"):
        config.pluginmanager.register(WithoutBenchmark(), "benchlab-without-benchmark")


SHARD = pytest.StashKey[tuple | None]()


def exported_dir(variable: str):
    """argparse type of --bench-models / --bench-data: an existing folder, exported as
    `variable` ($BENCHLAB_MODELS, $BENCHLAB_DATA), which the experiments read in this process, its
    xdist workers and its subprocesses."""
    def parse(text: str) -> str:
        os.environ[variable] = str(Path(input_dir(text)).resolve())
        return text
    return parse


def pin_gpu(spec: str | None, workerinput: dict) -> str | None:
    """The GPU this process takes from --bench-gpus: xdist worker k (gw<k>) takes entry k mod n,
    set as CUDA_VISIBLE_DEVICES before CUDA starts; None without the option."""
    if not spec:
        return None
    if spec == "all":
        import torch

        gpus = [str(i) for i in range(torch.cuda.device_count())]
        if not gpus:
            raise BenchlabError("--bench-gpus all: torch sees no CUDA device")
    else:
        gpus = [g.strip() for g in spec.split(",")]
        if not all(g.isdigit() for g in gpus):
            raise BenchlabError(f"--bench-gpus: expected GPU indices like 0,1,2, got {spec!r}")
    worker = workerinput.get("workerid", "gw0")
    gpu = gpus[int(worker.removeprefix("gw") or 0) % len(gpus)]
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    return gpu


@pytest.hookimpl(trylast=True)  # after -k / -m deselection: shard what will run
def pytest_collection_modifyitems(config, items):
    """--bench-shard i/n: keep this shard's cases (core.shard.assign over the benchlab items,
    costed by their package's `cost(case, config)` where it has one) and deselect the rest."""
    spec = config.stash.get(SHARD, None)
    if spec is None:
        return
    index, n = spec
    costs = {item.nodeid: cost_of(item, config) for item in items}
    where = shard.assign(costs, n)
    keep = [item for item in items if where[item.nodeid] == index]
    dropped = [item for item in items if where[item.nodeid] != index]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep
    total = os.environ.get("BENCHLAB_SHARD_TOTAL")  # set by `benchlab submit`'s jobs
    if total and not hasattr(config, "workerinput"):
        Path(total).write_text(f"{len(keep)}\n")


def cost_of(item, config) -> float:
    """A case's planned cost: the package's `cost(case, config)`, else the plan's GPU-time
    estimate from its `needs(case, config)` (core.plan), else 1."""
    exp = experiment_of(item)
    case = getattr(getattr(item, "callspec", None), "params", {}).get("case")
    module = experiments.load(exp) if exp and case is not None else None
    cost, needs = getattr(module, "cost", None), getattr(module, "needs", None)
    if cost is None and needs is None:
        return 1.0
    state = config.stash[STASH]
    cfg = experiments.config(exp, state.scale, state.budget)
    if cost is not None:
        return float(cost(case, cfg))
    from .core.plan import cost_of as planned

    return planned(kind_of(item), case_id_of(case), needs(case, cfg) or {}).seconds


def pytest_generate_tests(metafunc):
    mark = metafunc.definition.get_closest_marker("cases")
    if mark is None or "case" not in metafunc.fixturenames:
        return
    exp = experiment_of(metafunc.definition)
    if exp is None:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: @cases needs an experiment marker")
    try:
        source = mark.args[0]
        module = experiments.load(exp)
        kinds = kinds_of(module, required=False)
        if isinstance(source, str) and source in kinds:
            source = kinds[source][0]
        elif isinstance(source, str):  # the name of a function in the experiment package
            source = getattr(module, source)
        state = metafunc.config.stash[STASH]
        cases = list(source(experiments.config(exp, state.scale, state.budget)))
    except (BenchlabError, AttributeError) as e:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: @cases: {e}") from None
    metafunc.parametrize("case", cases, ids=[case_id_of(c) for c in cases])


# -- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def scale(request) -> str:
    """The scale name chosen with --bench-scale."""
    return request.config.stash[STASH].scale


@pytest.fixture(scope="session")
def device(request) -> str:
    """'cpu' or 'cuda', resolved from --bench-device."""
    from .core.timing import resolve_device

    try:
        return resolve_device(request.config.stash[STASH].device_name)
    except BenchlabError as e:
        pytest.skip(str(e))


@pytest.fixture
def timer(request, device):
    """core.timing.Timer over pytest-benchmark's fixture: what `measure_<kind>` functions take.
    Without pytest-benchmark (`-p no:benchmark`) it times plain rounds."""
    from .core.timing import Timer

    has_benchmark = request.config.pluginmanager.has_plugin("benchmark")
    return Timer(request.getfixturevalue("benchmark") if has_benchmark else None, device)


@pytest.fixture
def seed(request) -> int:
    """The base seed; python, numpy and torch are seeded with it before the test."""
    value = request.config.stash[STASH].seed
    seed_everything(value)
    return value


@pytest.fixture(scope="module")
def config(request):
    """The experiment's config object for the chosen scale."""
    exp = experiment_of(request.node)
    if exp is None:
        pytest.fail("the `config` fixture needs pytest.mark.experiment(NAME)")
    state = request.config.stash[STASH]
    return experiments.config(exp, state.scale, state.budget)


RECORDER = pytest.StashKey[Recorder]()


@pytest.fixture
def record(request) -> Recorder:
    """`record(name=value, ...)`: store result metrics of this case (numbers, strings, lists)."""
    if experiment_of(request.node) is None:
        pytest.fail("the `record` fixture needs pytest.mark.experiment(NAME)")
    rec = Recorder()
    request.node.stash[RECORDER] = rec
    return rec


@pytest.fixture
def measure(request, timer):
    """`measure(case)`: measure the case through the experiment's Run (its KINDS entry for the
    `cases` marker's kind) and keep its record, stored once the test has passed."""
    session = request.config.stash[STASH]
    run = session.run_of(request.node)
    kind = kind_of(request.node)
    kinds_of(run.module)  # a package without KINDS fails here with one line
    rec = Recorder()
    request.node.stash[RECORDER] = rec

    def measure_case(case):
        reason = run.missing(case)
        if reason:
            pytest.skip(reason)
        rec.update(run.metrics(kind, case, timer))
        return rec.metrics

    return measure_case


# -- hooks ----------------------------------------------------------------------------------

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    exp = experiment_of(item)
    if exp is None:
        return
    try:
        experiments.load(exp)  # an unknown name fails this test with one line
    except BenchlabError as e:
        pytest.fail(f"{item.nodeid}: pytest.mark.experiment: {e}", pytrace=False)
    session = item.config.stash[STASH]
    if session.resume and {"record", "measure"} & set(getattr(item, "fixturenames", ())):
        key = record_key(session.record_of(item))
        if session.done(key):
            item.user_properties.append((RESUMED, list(key)))
            pytest.skip("benchlab: already in the result store (--bench-resume)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    rec = item.stash.get(RECORDER, None)
    if call.when == "call" and report.passed and rec is not None:
        session = item.config.stash[STASH]
        # the benchmark a test asked for, or the one its `timer` fixture took (getfixturevalue:
        # not in funcargs, so bench modules that time through `timer` lost their extra_info)
        bench = item.funcargs.get("benchmark") or getattr(item.funcargs.get("timer"),
                                                          "benchmark", None)
        record = session.record_of(item, rec.metrics, time_of(bench))
        if bench is not None:
            bench.extra_info.update(rec.metrics)
            bench.extra_info["benchlab"] = record
        session.store.append(record)
        report.user_properties.append((KEY, list(record_key(record))))
    return report


def pytest_sessionfinish(session, exitstatus):
    state = session.config.stash.get(STASH, None)
    if state is None or state.is_worker or not state.build_reports:
        return
    try:
        experiments.report_all(state.records(), state.reports)
    except BenchlabError as e:
        session.config.get_terminal_writer().line(f"benchlab: error: {e}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config, machine_info):
    from .core.machine import machine_info as benchlab_info

    session = config.stash[STASH]
    machine_info["benchlab"] = dict(benchlab_info(), scale=session.scale,
                                    steady_heap=session.steady_heap)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Under --bench-resume the skipped cases' stored records go into the JSON too
    (`benchlab_resumed`), so `benchlab report out.json` equals the live report."""
    session = config.stash[STASH]
    if session.resumed:
        stored = session.store.latest()
        output_json["benchlab_resumed"] = [stored[k] for k in sorted(session.resumed)
                                           if k in stored]
