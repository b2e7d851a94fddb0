"""The one place that makes result records: the plugin and every CLI call `make_record`.

A record is a plain dict:

    experiment, case, kind, scale      what ran; `case` is "<kind>[<case id>]"
    config_hash                        hash of the case parameters, the experiment config, the
                                       digests of every input and the run settings (seed, device,
                                       dtype, threads): change any of them and the case reruns
    result_hash                        the same without the settings that do not choose what is
                                       computed (NOTE_SETTINGS: threads, heap, device): what
                                       `benchlab compare` matches cases on, noting the others
    code_version                       hash of the core, the zoo and the experiment's package
                                       (and, under pytest, the bench module that measured it)
    package_version                    the same without the bench module
    metrics                            the result metrics (`METRICS` in the package says which
                                       are results and with what tolerance; times are not)
    config, inputs, run, machine, commit, time     provenance

Together experiment, case, config_hash and code_version are the key (core.store.KEY_FIELDS).
"""

from .provenance import code_version, config_hash, git_commit, to_jsonable

TIME_FIELDS = ("mean", "stddev", "median", "min", "max", "iqr", "rounds")  # record["time"]
# Run settings that change how a case runs, not what it computes: two runs that differ only in
# these are compared (each metric within its tolerance), with the difference shown as a note.
NOTE_SETTINGS = ("threads", "steady_heap", "device", "gpu")


def case_name(kind: str, case_id: str) -> str:
    return f"{kind}[{case_id}]"


def run_settings(*, seed=None, device=None, dtype=None, threads=None, **more) -> dict:
    """What changes a result besides the config: part of the key. None values are dropped."""
    out = {"seed": seed, "device": device, "dtype": dtype, "threads": threads, **more}
    return {k: to_jsonable(v) for k, v in out.items() if v is not None}


def make_record(experiment: str, kind: str, case_id: str, metrics: dict, *, scale: str,
                params=None, config=None, inputs: dict | None = None, run: dict | None = None,
                module_file: str | None = None, extra_code: tuple = (),
                time: dict | None = None) -> dict:
    """The record of one finished case (see the module docstring for its fields).

    `module_file` is the experiment package's `__file__` (code version); `extra_code` more source
    files the result depends on (the bench module under pytest). `inputs` maps an input's name to
    its sha256 (zoo artifacts, shared data files, calibration nulls)."""
    from .machine import facts

    params, inputs, run = to_jsonable(params or {}), dict(inputs or {}), dict(run or {})
    key = {"params": params, "config": to_jsonable(config), "inputs": inputs, "run": run}
    what = dict(key, run={k: v for k, v in run.items() if k not in NOTE_SETTINGS})
    return {
        "experiment": experiment, "case": case_name(kind, case_id), "kind": kind,
        "scale": scale, "config_hash": config_hash(key), "result_hash": config_hash(what),
        "code_version": code_version(module_file, *extra_code),
        "package_version": code_version(module_file),
        "metrics": to_jsonable(metrics), "config": params, "inputs": inputs, "run": run,
        "machine": facts(), "commit": git_commit(), "time": time,
    }
