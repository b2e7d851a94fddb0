"""`benchlab lm-timing aggregate`: the seed's summary of a directory of runs.

    benchlab lm-timing aggregate --results-dir results --output summary.md --csv results.csv

Rows are the records of the directory's store.jsonl (what `lm-timing run` and `sweep` append),
then the seed JSON files whose configuration no record has. Forward pairs with forward+backward
only when every other config field (KEYS) agrees. Times are per trial (the seed's mean_time_ms:
num_steps steps) and per step; an out-of-memory run shows OOM in its time columns.
"""

import numbers
from pathlib import Path

from benchlab.core.errors import fail, read_json

from .model import DIMS, SIZES, ModelConfig, canonical_size, num_params

STORE = "store.jsonl"  # what `lm-timing run` leaves beside its JSON
SIZE_ORDER = {name: i for i, name in enumerate(SIZES)}
# every field that defines a configuration; mode is what the fwd / fwd+bwd table compares
KEYS = ("model_size", "d_model", "d_ff", "num_layers", "num_heads", "vocab", "context_length",
        "batch_size", "num_steps", "precision", "attn", "impl", "compile", "device")
INTS = ("d_model", "d_ff", "num_layers", "num_heads", "vocab", "context_length", "batch_size",
        "num_steps", "num_warmups", "num_trials", "num_params")
DEFAULTS = {"num_steps": 1, "precision": "fp32", "attn": "sdpa", "impl": "ours",
            "compile": False, "device": "?", "batch_size": 4, "vocab": 10_000}
SHOWN = ("model_size", "d_model", "d_ff", "num_layers", "num_heads", "context_length",
         "batch_size", "num_steps", "mode", "precision", "status", "mean_time_ms", "std_time_ms",
         "mean_step_ms", "num_params", "tokens_per_s", "mfu")


def _int(path, data, key):
    v = data[key]
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise fail(str(path), key, f"not an integer ({v!r})")
    return v


def _row(path: Path, data: dict) -> dict:
    for key in ("model_size", "context_length", "mean_time_ms", "std_time_ms"):
        if key not in data:
            raise fail(str(path), key, "missing")
    row = {**DEFAULTS, **data, "file": path.name}
    row.setdefault("forward_only", False)
    row.setdefault("mode", "forward" if row["forward_only"] else "forward_backward")
    row.setdefault("status", "ok" if data["mean_time_ms"] is not None else "oom")
    row["model_size"] = str(row["model_size"])
    for key in INTS:
        if row.get(key) is not None:
            row[key] = _int(path, row, key)
    if row["status"] == "ok":
        for key in ("mean_time_ms", "std_time_ms"):
            v = row[key]
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise fail(str(path), key, f"not a number ({v!r})")
        if row["num_steps"] < 1:
            raise fail(str(path), "num_steps", f"must be >= 1 ({row['num_steps']})")
        row["mean_step_ms"] = row["mean_time_ms"] / row["num_steps"]
    else:
        row["mean_time_ms"] = row["std_time_ms"] = row["mean_step_ms"] = None
    if row.get("num_params") is None and all(row.get(k) is not None for k in DIMS):
        row["num_params"] = num_params(ModelConfig(*(row[k] for k in DIMS), row["vocab"]))
    return row


def record_row(record: dict) -> dict:
    """The row of an `lm-timing run` record (kind "step", with the run's dims as params): its
    configuration from the case and params, its times and counts as recorded (per trial: the
    seed's mean_time_ms, std_time_ms; per step: the record's mean_ms)."""
    p, m = record["config"], record["metrics"]
    c = p["case"]
    return {**DEFAULTS, "model_size": c["size"], **p["dims"], "vocab": c["vocab"],
            "context_length": c["context"], "batch_size": c["batch"],
            "num_steps": p["num_steps"], "num_warmups": c["warmup"], "num_trials": c["rounds"],
            "forward_only": c["mode"] == "forward", "mode": c["mode"],
            "precision": c["precision"], "attn": c["attn"], "impl": p["impl"],
            "compile": c["compile"], "device": record["run"]["device"], "status": m["status"],
            "mean_time_ms": m.get("mean_time_ms"), "std_time_ms": m.get("std_time_ms"),
            "mean_step_ms": m.get("mean_ms"), "num_params": m["num_params"],
            "tokens_per_s": m.get("tokens_per_s"), "mfu": m.get("mfu"),
            "file": f"{STORE}: {record['case']}"}


def config_key(row: dict) -> tuple:
    return (canonical_size(str(row["model_size"])),
            *(str(row.get(k)) for k in KEYS[1:] + ("mode",)))


def load_results(results_dir: Path) -> list[dict]:
    """Rows of the records in the results dir's store.jsonl (what `lm-timing run` and `sweep`
    leave), then of the seed JSON files whose configuration no record has (the seed's own
    results, or runs of an older package version)."""
    from benchlab.core.results import load_records

    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise fail(str(results_dir), "--results-dir", "no such directory")
    store = results_dir / STORE
    records = load_records(store) if store.is_file() else []
    rows = [record_row(r) for r in records if r["experiment"] == "lm_timing"
            and r["kind"] == "step" and "dims" in (r.get("config") or {})]
    seen = {config_key(r) for r in rows}
    files = [_row(p, read_json(p)) for p in sorted(results_dir.glob("*.json"))]
    rows += [r for r in files if config_key(r) not in seen]
    if not rows:
        raise fail(str(results_dir), "--results-dir", "no *.json results")
    return rows


def _frame(rows):
    import pandas as pd

    frame = pd.DataFrame(rows)
    for key in INTS:
        if key in frame:
            frame[key] = frame[key].astype("Int64")
    frame["_order"] = frame["model_size"].map(SIZE_ORDER).fillna(len(SIZE_ORDER))
    return frame.sort_values(["_order", "model_size", "d_model", "context_length", "batch_size",
                              "num_steps", "mode", "precision"], kind="stable")


def summary_tables(rows: list[dict]) -> dict:
    """The seed's three sections as DataFrames (the third only when both modes exist)."""
    frame = _frame(rows)
    cols = [c for c in SHOWN if c in frame]
    out = {"complete": frame[cols].reset_index(drop=True), "by_size": {}}
    for size, part in frame.groupby("model_size", sort=False):
        keep = [c for c in ("context_length", "batch_size", "num_steps", "mode", "precision",
                            "status", "mean_time_ms", "std_time_ms", "mean_step_ms") if c in part]
        out["by_size"][size] = part[keep].reset_index(drop=True)
    keys = [k for k in KEYS if k in frame]
    keyed = frame.assign(**{k: frame[k].astype(str) for k in keys})
    dup = keyed[keyed.duplicated(keys + ["mode"], keep=False)]
    if len(dup):
        raise fail(", ".join(dup["file"]), "config", "the same configuration twice (move one "
                   "to another --results-dir)")
    fwd = keyed[keyed["mode"] == "forward"]
    both = keyed[keyed["mode"] == "forward_backward"]
    if len(fwd) and len(both):
        merged = fwd[keys + ["_order", "mean_step_ms"]].merge(
            both[keys + ["mean_step_ms"]], on=keys, suffixes=("_forward", "_fwd_bwd"))
        merged = merged.sort_values("_order", kind="stable").drop(columns="_order")
        f, fb = merged["mean_step_ms_forward"], merged["mean_step_ms_fwd_bwd"]
        merged["backward_ms"] = fb - f
        merged["backward_over_forward"] = (fb - f) / f
        always = ("model_size", "context_length", "batch_size", "num_steps", "precision")
        vary = [k for k in keys if k in always or frame[k].astype(str).nunique() > 1]
        out["fwd_vs_bwd"] = merged[vary + list(merged.columns[len(keys):])].reset_index(
            drop=True)
    return out


def _cell(v, name: str, status: str) -> str:
    import pandas as pd

    if v is None or v is pd.NA or (isinstance(v, float) and v != v):
        return "OOM" if status == "oom" and name.endswith("_ms") else ""
    if isinstance(v, bool):
        return str(v)
    if name in INTS or isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, float):
        return f"{v:.4f}" if name == "mfu" else f"{v:.2f}"
    return str(v)


def to_markdown(frame) -> str:
    """A table with integers as integers, floats to 2 places, OOM in an OOM row's times."""
    from tabulate import tabulate

    status = frame["status"] if "status" in frame else ["ok"] * len(frame)
    body = [[_cell(v, c, s) for c, v in zip(frame.columns, row, strict=True)]
            for row, s in zip(frame.itertuples(index=False), status, strict=True)]
    return tabulate(body, headers=list(frame.columns), tablefmt="pipe", disable_numparse=True)


def write_summary(rows: list[dict], output, csv=None) -> None:
    tables = summary_tables(rows)
    md = ["# Benchmark Summary", "", "mean_time_ms is per trial (num_steps steps); "
          "mean_step_ms is per step.", "", "## Complete Results", "",
          to_markdown(tables["complete"]), "", "## Results by Model Size", ""]
    for size, part in tables["by_size"].items():
        md += [f"### Model: {size}", "", to_markdown(part), ""]
    md += ["## Forward-only vs Forward+Backward", "",
           "Per step; rows pair runs whose every other config field agrees. Each run was "
           "timed alone, in its own process, not side by side: these ratios carry no interval "
           "(the bench's sweep times the modes in the same rounds: its fwd_vs_bwd table).", ""]
    if "fwd_vs_bwd" in tables and len(tables["fwd_vs_bwd"]):
        md += [to_markdown(tables["fwd_vs_bwd"]), ""]
    else:
        md += ["(needs forward_only=True and forward_only=False results of one config)", ""]
    Path(output).write_text("\n".join(md))
    if csv:
        tables["complete"].to_csv(csv, index=False, lineterminator="\n")
