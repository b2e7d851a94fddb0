"""Device-aware timing. On CUDA every timed call ends with a synchronize, so GPU work is timed."""

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable


def resolve_device(name: str = "auto") -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        from .errors import BenchlabError

        raise BenchlabError("--bench-device: cuda requested but torch sees no CUDA device")
    return name


def steady_heap() -> bool:
    """Keep freed CPU memory mapped (glibc: no mmap'd chunks, no trimming), so that a step's
    tensors reuse pages instead of faulting fresh zeroed ones: with glibc's defaults every
    tensor over the mmap threshold (a language model's logits, say) is unmapped when freed and
    faulted in again next step, about a third of a tiny LM training step on this machine, and
    the largest source of noise between side-by-side runs. Returns whether it was applied
    (False off glibc). Process-wide; the plugin records it in machine_info."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc malloc.h
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**30))
    except (OSError, AttributeError):
        return False


def trim_heap() -> None:
    """Hand free heap memory back to the OS (glibc malloc_trim), so a resident-set measurement
    starts from live data (off glibc it includes the allocator's cached blocks)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_memory(step, device) -> int:
    """Peak bytes one call of `step` adds: CUDA max allocated after a reset; on CPU the peak
    resident-set growth over the call (after trimming the heap), sampled every millisecond."""
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    trim_heap()  # freed blocks the allocator kept would hide the step's growth
    base = _rss_bytes()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.001)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        step()
    finally:
        done.set()
        thread.join()
    return int(max(peak[0], _rss_bytes()) - base)


def forward_backward(fn: Callable, inputs, grad) -> Callable:
    """A callable to time: fn() and the gradients of its output (against `grad`) for `inputs`."""
    import torch

    def run():
        torch.autograd.grad(fn(), inputs, grad)
    return run


@contextlib.contextmanager
def threads(n: int | None):
    """torch intra-op threads set to `n` inside the block (None or 0: unchanged). One thread keeps
    CPU timings meaningful on a shared, oversubscribed machine (OpenMP spin-waits otherwise)."""
    import torch

    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(old)


def synchronize(device) -> None:
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def synced(fn: Callable, device) -> Callable:
    """`fn` wrapped so that it returns only when the device has finished its work."""
    if not str(device).startswith("cuda"):
        return fn

    def run(*args, **kwargs):
        out = fn(*args, **kwargs)
        synchronize(device)
        return out

    return run


def time_fn(fn: Callable, device="cpu", *, warmup: int = 1, trials: int = 5) -> list[float]:
    """Seconds per call of `fn()`: `warmup` untimed calls, then `trials` timed ones."""
    run = synced(fn, device)
    synchronize(device)
    for _ in range(warmup):
        run()
    times = []
    for _ in range(trials):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return times


def _rotated_rounds(fns: dict, device, inner: int = 1):
    """(run_round, times): run_round(r) calls every fn of `fns` (`inner` times each, synced) in
    the order rotated by r, appending each fn's seconds per call to times[name]."""
    names = list(fns)
    runs = {n: synced(fns[n], device) for n in names}
    times: dict[str, list[float]] = {n: [] for n in names}

    def run_round(r: int) -> None:
        r %= len(names)
        for n in names[r:] + names[:r]:
            t0 = time.perf_counter()
            for _ in range(inner):
                runs[n]()
            times[n].append((time.perf_counter() - t0) / inner)

    return run_round, times


def _item_rounds(fns: dict, items: list, device):
    """(run_round, times) like _rotated_rounds for fns taking an item: run_round(r) passes every
    item through every fn back to back (order rotated by r + the item's index) and appends each
    fn's seconds summed over the items. Sub-millisecond calls are paired within a millisecond,
    so a slow stretch of a shared machine lands on both sides of a pair instead of on one fn's
    whole batch."""
    names = list(fns)
    runs = {n: synced(fns[n], device) for n in names}
    times: dict[str, list[float]] = {n: [] for n in names}

    def run_round(r: int) -> None:
        total = dict.fromkeys(names, 0.0)
        for i, item in enumerate(items):
            k = (r + i) % len(names)
            for n in names[k:] + names[:k]:
                t0 = time.perf_counter()
                runs[n](item)
                total[n] += time.perf_counter() - t0
        for n in names:
            times[n].append(total[n])

    return run_round, times


def interleave(fns: dict, device="cpu", *, warmup: int = 1, rounds: int = 5,
               inner: int = 1, items: list | None = None) -> dict[str, list[float]]:
    """Seconds per call of each of `fns` (name -> fn()), timed side by side: round r runs them
    once each, in an order rotated by r so that none always goes first; `warmup` untimed calls
    each before. Ratios come from the paired rounds (core.stats.paired_ratio). With `items`,
    each fn is fn(item) and a round is every item through every fn, interleaved item by item
    (_item_rounds): the seconds are per round."""
    synchronize(device)
    for fn in fns.values():
        for _ in range(warmup):
            synced(fn, device)() if items is None else [synced(fn, device)(x) for x in items]
    run_round, times = (_rotated_rounds(fns, device, inner) if items is None
                        else _item_rounds(fns, items, device))
    for r in range(rounds):
        run_round(r)
    return times


def measure_side_by_side(benchmark, fns: dict, device="cpu", *, warmup: int = 1,
                         rounds: int = 5, items: list | None = None) -> dict[str, list[float]]:
    """`interleave` under pytest-benchmark: each benchmark round calls every fn of `fns` once, in
    an order rotated by round (with `items`: every item through every fn, item by item), and the
    benchmark's time is that of the whole round. Returns the seconds per call (per round) of each
    fn in the timed rounds (with benchmarks disabled: its one call), for core.stats.paired_ratio."""
    run_round, times = (_rotated_rounds(fns, device) if items is None
                        else _item_rounds(fns, items, device))
    count = itertools.count()
    measure(benchmark, lambda: run_round(next(count)), device, warmup=warmup, rounds=rounds)
    skip = warmup if benchmark.enabled else 0
    return {n: v[skip:] for n, v in times.items()}


def measure(benchmark, fn: Callable, device="cpu", *, warmup: int = 1, rounds: int = 5,
            setup: Callable | None = None, times: list[float] | None = None):
    """Time `fn` with pytest-benchmark's pedantic mode: explicit warm-up, one call per round.

    Returns fn's result from the last round. `setup` (untimed) runs before every round and may
    return `(args, kwargs)` for fn, as in `benchmark.pedantic`. If `times` is given, the seconds
    of every timed round are appended to it; with benchmarks disabled (--benchmark-disable, xdist)
    pytest-benchmark calls fn once, and that one call is timed, so a metric built from `times`
    exists either way.
    """
    run = synced(fn, device)
    calls: list[float] = []

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        out = run(*args, **kwargs)
        calls.append(time.perf_counter() - t0)
        return out

    synchronize(device)
    out = benchmark.pedantic(timed, setup=setup, rounds=rounds, warmup_rounds=warmup,
                             iterations=1)
    if times is not None:
        times.extend(calls[warmup:] if benchmark.enabled else calls)
    return out


class Timer:
    """What a measuring function times with, wherever it runs.

    Under pytest it wraps pytest-benchmark's fixture (`Timer(benchmark, device)`: the plugin's
    `timer` fixture); in a CLI or an asv benchmark it is `Timer(None, device)` and times plain
    rounds. Measuring functions (`measure_<kind>(case, config, timer) -> metrics`) take one and
    never see pytest.
    """

    def __init__(self, benchmark=None, device: str = "cpu"):
        self.benchmark = benchmark
        self.device = device

    @property
    def enabled(self) -> bool:
        """False under --benchmark-disable: each measured fn then runs once, untimed warm-up."""
        return self.benchmark is None or bool(self.benchmark.enabled)

    def measure(self, fn: Callable, *, warmup: int = 1, rounds: int = 5,
                setup: Callable | None = None, times: list[float] | None = None):
        """fn's result from the last round; seconds of every timed round appended to `times`."""
        if self.benchmark is not None:
            return measure(self.benchmark, fn, self.device, warmup=warmup, rounds=rounds,
                           setup=setup, times=times)
        run, out = synced(fn, self.device), None
        synchronize(self.device)
        for r in range(warmup + rounds):
            args, kwargs = setup() or ((), {}) if setup else ((), {})
            t0 = time.perf_counter()
            out = run(*args, **kwargs)
            if r >= warmup and times is not None:
                times.append(time.perf_counter() - t0)
        return out

    def side_by_side(self, fns: dict, *, warmup: int = 1, rounds: int = 5,
                     items: list | None = None) -> dict[str, list[float]]:
        """Seconds per call (with `items`: per round of fn(item) over the items) of each fn, in
        rotated rounds (core.stats.paired_ratio for ratios)."""
        if self.benchmark is not None:
            return measure_side_by_side(self.benchmark, fns, self.device, warmup=warmup,
                                        rounds=rounds, items=items)
        return interleave(fns, self.device, warmup=warmup, rounds=rounds, items=items)
