"""Report helpers shared by every experiment's `report(records, outdir)`.

Tables are written three ways (markdown, CSV, LaTeX) from one pandas DataFrame; figures are PNG
through matplotlib's Agg backend. Output depends only on the records, so rebuilding a report from
a saved JSON gives the same files as the live run.
"""

from pathlib import Path

import pandas as pd

from .records import TIME_FIELDS


def flatten(d: dict, prefix: str = "") -> dict:
    """{"case": {"model": "opt"}} -> {"case.model": "opt"}."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def records_frame(records: list[dict]) -> pd.DataFrame:
    """One row per record: `id` (the record's case, "<kind>[<case id>]"), `kind`, `scale`, the
    flattened parametrization (`case.model`, ...), the metrics under their own names, `time_mean`,
    `time_stddev`, ... (NaN when the run had --benchmark-disable, so reports can always name
    these columns)."""
    rows = []
    for rec in records:
        row = {"id": rec["case"], "kind": rec.get("kind"), "scale": rec.get("scale")}
        row.update(flatten(rec.get("config") or {}))
        row.update(rec.get("metrics") or {})
        time = rec.get("time") or {}  # None when benchmarks were disabled
        row.update({f"time_{k}": time.get(k, float("nan")) for k in TIME_FIELDS})
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.sort_values("id", kind="stable").reset_index(drop=True) if rows else frame


def of_kind(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The rows of one case kind (records' `kind`, from the package's `<kind>_cases`)."""
    if frame.empty:
        return frame
    return frame[frame["kind"] == kind].reset_index(drop=True)


def write_table(frame: pd.DataFrame, outdir, name: str, *, floatfmt: str = ".4g",
                index: bool = False) -> list[Path]:
    """Write `name.md`, `name.csv` and `name.tex` under `outdir`; return the paths."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = [outdir / f"{name}.{ext}" for ext in ("md", "csv", "tex")]
    paths[0].write_text(frame.to_markdown(index=index, floatfmt=floatfmt) + "\n")
    frame.to_csv(paths[1], index=index, float_format="%.6g", lineterminator="\n")
    fmt = "{:" + floatfmt + "}"
    paths[2].write_text(frame.to_latex(index=index, float_format=fmt.format, escape=True))
    return paths


def new_figure(nrows: int = 1, ncols: int = 1, *, size: tuple[float, float] | None = None,
               **kwargs):
    """A matplotlib (fig, axes) pair on the Agg backend, nothing shown on screen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = size or (4.5 * ncols, 3.4 * nrows)
    return plt.subplots(nrows, ncols, figsize=size, squeeze=False if nrows * ncols > 1 else True,
                        **kwargs)


def save_figure(fig, outdir, name: str, *, dpi: int = 120) -> Path:
    """Save `name.png` under `outdir` and close the figure."""
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / f"{name}.png"
    fig.tight_layout()
    # A fixed metadata dict keeps PNG bytes identical between live and rebuilt reports.
    fig.savefig(path, dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return path


MACHINE_FIELDS = ("cpu", "arch", "torch", "torch_threads", "numpy", "transformers", "gpu")


def write_provenance(records: list[dict], outdir) -> Path:
    """`provenance.md` beside a report: what its records ran on (scale, commit, code version,
    machine, run settings) and the sha256 of every input they read, with how many cases read it.
    Sorted, so the file depends only on the records."""
    def counted(values):
        counts: dict[str, int] = {}
        for v in values:
            if v not in ("", "None"):  # a baseline file keeps no machine, commit or run
                counts[v] = counts.get(v, 0) + 1
        return sorted(counts.items())

    def machine(rec):
        m = rec.get("machine") or {}
        if not m:
            return ""
        isa = "/".join(m.get("isa") or []) or "-"
        return ", ".join(f"{k} {m.get(k)}" for k in MACHINE_FIELDS if m.get(k) is not None) + \
            f", isa {isa}"

    def run(rec):
        return ", ".join(f"{k}={v}" for k, v in sorted((rec.get("run") or {}).items()))

    rows = [("scale", counted(str(r.get("scale")) for r in records)),
            ("commit", counted(str(r.get("commit")) for r in records)),
            ("code version", counted(str(r.get("code_version")) for r in records)),
            ("machine", counted(machine(r) for r in records)),
            ("run settings", counted(run(r) for r in records)),
            ("input", counted(f"{name} sha256 {digest}" for r in records
                              for name, digest in sorted((r.get("inputs") or {}).items())))]
    lines = [f"# What these {len(records)} records ran on", "",
             "| field | value | cases |", "|---|---|---:|"]
    lines += [f"| {field} | {value.replace('|', '/')} | {n} |"
              for field, values in rows for value, n in values]
    path = Path(outdir) / "provenance.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
