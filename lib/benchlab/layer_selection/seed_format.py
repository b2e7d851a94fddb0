"""The seed's layer-selection workflow: case generation, per-model runs, result files and plots.

    D=../shared/data/layer_selection
    benchlab layer-selection generate-cases --base $D/cases/experiment_cases.json --output-dir g
    benchlab layer-selection run --models opt_125m llama2_7b --scores_dir $D/scores \
        --norms_dir $D/norms --cases $D/cases/experiment_cases.json \
        --scalability_cases $D/cases/scalability_cases.json --output-dir exp --plot --combined
    benchlab layer-selection plot --results-dir exp

Files (seed names, seed short model names such as opt_125m): `{model}_all_results.json`,
`{model}/case_001_results.json` ..., `{model}_scalability_results.json`,
`{model}_comparison.png/.txt`, `combined_comparison.png/.txt`, `scalability_plot.png`.
Every problem with an input is a one-line BenchlabError naming the file and the field, raised
before anything is written.
"""

import json
import re
from pathlib import Path

import numpy as np

from ..core.errors import BenchlabError, fail, read_json
from . import data
from .experiment import evaluate

METHOD_ORDER = data.VALUE_METHODS


def short_name(scores_path) -> str:
    """The seed's short model name of a scores file: opt125m_scores.json -> opt_125m."""
    stem = Path(scores_path).name.removesuffix(".json").removesuffix("_scores")
    for short, (scores, _) in data.SHARED_MODELS.items():
        if Path(scores_path).name == scores:
            return short
    stem = stem.replace("-", "_")
    return re.sub(r"^opt(\d)", r"opt_\1", stem)


def find_file(folder, model: str, kind: str) -> Path:
    """`{model}_{kind}.json` in folder, in any of the seed's spellings (opt125m, llama2-7b)."""
    folder = Path(folder)
    shared = data.SHARED_MODELS.get(model)
    names = [f"{model}_{kind}.json", f"{model.replace('_', '-')}_{kind}.json",
             f"{model.replace('_', '')}_{kind}.json"]
    if shared:
        names.insert(0, shared[0] if kind == "scores" else shared[1])
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise fail(str(folder), f"--{kind}_dir", f"no {kind} file for model {model!r} "
               f"(looked for {', '.join(dict.fromkeys(names))})")


def model_cases(path, model: str) -> tuple[list[dict], bool]:
    """(cases, is_scalability): a scalability file's cases are those whose model_name is the
    model (upstream runs 60 per model); an experiment file's cases apply to every model."""
    raw = read_json(path)
    cases = data.read_cases(path)
    scal = "budget_percentage" in raw
    if not scal:
        return cases, False
    for i, c in enumerate(cases):
        if "model_name" not in c:
            raise fail(str(path), f"cases[{i}].model_name", "missing")
    mine = [c for c in cases if c["model_name"] == model]
    if not mine:
        known = sorted({c["model_name"] for c in cases})
        raise fail(str(path), "cases[].model_name", f"no case for model {model!r} "
                   f"(the file has {', '.join(known)})")
    return mine, True


def _method_result(model, budgets, method, solver, case_id) -> dict:
    o = evaluate(model, budgets, method, solver, case_id)
    return {"optimal_benefit": o.objective, "alphaprun_benefit": o.benefit,
            "alphaprun_ratio": o.ratio, "assignments": [list(iv) if iv else None
                                                        for iv in o.intervals],
            "is_valid": o.valid}


def run_model(model: data.ModelData, name: str, cases: list[dict], scal: bool, solver: str,
              cases_path, scores_path, norms_path, progress=None) -> dict:
    """The seed's results document of one model over its cases (experiment cases rescaled to
    the model as the seed runner does; scalability budgets as given)."""
    factor = 1.0 if scal else data.scale_factor(cases, model)
    methods = list(METHOD_ORDER) if model.norms is not None else ["random", "alphaprun"]
    results = []
    for case in progress(cases) if progress else cases:
        budgets = np.asarray(case["budgets"], dtype=np.float64) * factor
        per = {m: _method_result(model, budgets, m, solver, case["case_id"]) for m in methods}
        row = {"case_id": case["case_id"], "budgets": budgets.tolist()}
        if scal:
            row |= {"num_verifiers": len(budgets), "total_budget": float(budgets.sum())}
        else:
            row |= {"original_budgets": [float(b) for b in case["budgets"]],
                    "scale_factor": factor}
        results.append(row | {"results": per})
    doc = {"model_name": name, "scores_file": str(scores_path),
           "norms_file": str(norms_path) if norms_path else None, "solver": solver,
           "source_cases_file": str(cases_path), "num_cases": len(results),
           "total_alphaprun_score": model.total_significance,
           "total_model_cost": model.total_cost, "results": results}
    if scal:
        doc["verifier_counts"] = sorted({r["num_verifiers"] for r in results})
    return doc


def output_names(name: str, scal: bool) -> tuple[str, str | None]:
    """(results file, per-case folder or None) of one model's run."""
    if scal:
        return f"{name}_scalability_results.json", None
    return f"{name}_all_results.json", name


def write_json(path: Path, doc) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)


def write_run(outdir: Path, doc: dict, scal: bool) -> list[Path]:
    """The results file and, for experiment cases, `{model}/case_XXX_results.json`."""
    main_name, folder = output_names(doc["model_name"], scal)
    paths = []
    if folder:
        for r in doc["results"]:
            path = outdir / folder / f"case_{int(r['case_id']):03d}_results.json"
            write_json(path, {"model_name": doc["model_name"], "solver": doc["solver"], **r})
            paths.append(path)
    write_json(outdir / main_name, doc)
    return [outdir / main_name, *paths]


# -- case generation ----------------------------------------------------------------------------

def generate_cases(base: list[dict], *, perturbations: int = 10, factor: float = 0.1,
                   seed: int = 42) -> list[dict]:
    """Perturbed budget cases: each base case's budgets times independent U(1-f, 1+f) factors,
    `perturbations` per case, from numpy's default_rng(seed); case ids 1, 2, ... in order."""
    rng = np.random.default_rng(seed)
    out = []
    for orig in base:
        b = np.asarray(orig.get("original_budgets", orig["budgets"]), dtype=np.float64)
        for k in range(perturbations):
            new = b * rng.uniform(1 - factor, 1 + factor, size=b.size)
            out.append({"case_id": len(out) + 1,
                        "original_case_id": orig.get("original_case_id", orig["case_id"]),
                        "perturbation_index": k, "budgets": new.tolist(),
                        "original_budgets": b.tolist(), "perturbation_factor": factor})
    return out


def unique_originals(cases: list[dict]) -> list[dict]:
    """Base cases of a perturbed file (one per original_case_id), or the cases themselves."""
    if not all("original_case_id" in c for c in cases):
        return cases
    seen = {}
    for c in cases:
        seen.setdefault(c["original_case_id"], {"case_id": c["original_case_id"],
                                                "budgets": c["original_budgets"]})
    return list(seen.values())


# -- reading the CLI's own outputs ---------------------------------------------------------------

RESULT_FIELDS = ("model_name", "results")


def read_results(path) -> dict:
    """A `*_all_results.json` / `*_scalability_results.json`, checked field by field."""
    doc = read_json(path)
    for f in RESULT_FIELDS:
        if f not in doc:
            raise fail(str(path), f, "missing (not a layer-selection results file)")
    if not isinstance(doc["results"], list) or not doc["results"]:
        raise fail(str(path), "results", "missing or empty")
    for i, r in enumerate(doc["results"]):
        per = r.get("results") if isinstance(r, dict) else None
        if not isinstance(per, dict) or not per:
            raise fail(str(path), f"results[{i}].results", "missing or empty")
        for m, v in per.items():
            x = v.get("alphaprun_ratio") if isinstance(v, dict) else None
            if isinstance(x, bool) or not isinstance(x, int | float):
                raise fail(str(path), f"results[{i}].results.{m}.alphaprun_ratio",
                           "missing or not a number")
        if "num_verifiers" in r and not isinstance(r["num_verifiers"], int):
            raise fail(str(path), f"results[{i}].num_verifiers", "not an integer")
    return doc


def read_results_dir(folder) -> tuple[list[dict], list[dict]]:
    """(experiment docs, scalability docs) of a results folder; an error when it has neither."""
    folder = Path(folder)
    if not folder.is_dir():
        raise fail(str(folder), "--results-dir", "no such directory")
    exp = [read_results(p) for p in sorted(folder.glob("*_all_results.json"))]
    scal = [read_results(p) for p in sorted(folder.glob("*_scalability_results.json"))]
    if not exp and not scal:
        raise fail(str(folder), "--results-dir", "no *_all_results.json or "
                   "*_scalability_results.json files")
    return exp, scal


def ratios(doc: dict) -> dict[str, np.ndarray]:
    """method -> alphaprun_ratio over the document's cases, in METHOD_ORDER."""
    found = {}
    for r in doc["results"]:
        for m, v in r["results"].items():
            found.setdefault(m, []).append(v["alphaprun_ratio"])
    order = [m for m in METHOD_ORDER if m in found] + sorted(set(found) - set(METHOD_ORDER))
    return {m: np.asarray(found[m], dtype=np.float64) for m in order}


def comparison_text(doc: dict) -> str:
    lines = [f"AlphaPrun ratio by value method: {doc['model_name']} "
             f"({len(doc['results'])} cases, solver {doc.get('solver', '?')})", "",
             f"{'method':<10} {'n':>5} {'mean':>8} {'median':>8} {'std':>8} {'min':>8} "
             f"{'max':>8}"]
    for m, x in ratios(doc).items():
        lines.append(f"{m:<10} {x.size:>5d} {x.mean():>8.4f} {np.median(x):>8.4f} "
                     f"{x.std(ddof=1) if x.size > 1 else 0.0:>8.4f} {x.min():>8.4f} "
                     f"{x.max():>8.4f}")
    return "\n".join(lines) + "\n"


def model_order(docs: list[dict]) -> list[dict]:
    """Shared models in their size order (opt_125m ... llama2_70b), others after by name."""
    known = list(data.SHARED_MODELS)
    return sorted(docs, key=lambda d: (known.index(d["model_name"]) if d["model_name"] in known
                                       else len(known), d["model_name"]))


def combined_text(docs: list[dict]) -> str:
    methods = list(dict.fromkeys(m for d in docs for m in ratios(d)))
    lines = ["Mean AlphaPrun ratio by model and value method", "",
             f"{'model':<12}" + "".join(f" {m:>10}" for m in methods)]
    for d in docs:
        r = ratios(d)
        lines.append(f"{d['model_name']:<12}" + "".join(
            f" {r[m].mean():>10.4f}" if m in r else f" {'-':>10}" for m in methods))
    return "\n".join(lines) + "\n"


def _boxes(ax, doc):
    r = ratios(doc)
    ax.boxplot(list(r.values()), tick_labels=list(r))
    ax.set_ylabel("AlphaPrun ratio")
    ax.tick_params(axis="x", labelrotation=30)


def plot_comparison(doc: dict, outdir) -> list[Path]:
    from ..core.report import new_figure, save_figure

    name = doc["model_name"]
    fig, ax = new_figure(size=(5.5, 3.8))
    _boxes(ax, doc)
    ax.set_title(f"{name}: AlphaPrun ratio by method ({len(doc['results'])} cases)")
    png = save_figure(fig, outdir, f"{name}_comparison")
    txt = Path(outdir) / f"{name}_comparison.txt"
    txt.write_text(comparison_text(doc))
    return [png, txt]


def plot_combined(docs: list[dict], outdir) -> list[Path]:
    from ..core.report import new_figure, save_figure

    docs = model_order(docs)
    fig, axes = new_figure(1, len(docs), size=(3.8 * len(docs), 3.8), sharey=True)
    for ax, doc in zip(np.atleast_1d(axes).ravel(), docs, strict=True):
        _boxes(ax, doc)
        ax.set_title(doc["model_name"] + (" (65B shapes)" if doc["model_name"] == "llama2_70b"
                                          else ""))
    png = save_figure(fig, outdir, "combined_comparison")
    txt = Path(outdir) / "combined_comparison.txt"
    txt.write_text(combined_text(docs))
    return [png, txt]


def plot_scalability(docs: list[dict], outdir) -> Path:
    """Mean ratio vs number of verifiers M per method, one panel per model; integer M ticks,
    the legend beside the panels."""
    from matplotlib.ticker import MaxNLocator

    from ..core.report import new_figure, save_figure

    docs = model_order(docs)
    fig, axes = new_figure(1, len(docs), size=(4.2 * len(docs) + 1.4, 3.6))
    axes = np.atleast_1d(axes).ravel()
    for ax, doc in zip(axes, docs, strict=True):
        Ms = np.array([r.get("num_verifiers", len(r["budgets"])) for r in doc["results"]])
        for m, x in ratios(doc).items():
            xs = sorted(set(Ms.tolist()))
            ax.plot(xs, [x[Ms == k].mean() for k in xs], marker="o", ms=3, label=m)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(title=doc["model_name"], xlabel="verifiers M", ylabel="mean AlphaPrun ratio")
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    return save_figure(fig, outdir, "scalability_plot")


def plot_dir(folder, outdir=None) -> list[Path]:
    """Every seed figure and text summary from a results folder's own files."""
    exp, scal = read_results_dir(folder)
    outdir = Path(outdir or folder)
    paths = []
    for doc in exp:
        paths += plot_comparison(doc, outdir)
    if len(exp) > 1:
        paths += plot_combined(exp, outdir)
    if scal:
        paths.append(plot_scalability(scal, outdir))
    return paths


__all__ = ["BenchlabError", "find_file", "generate_cases", "model_cases", "plot_dir",
           "read_results", "run_model", "short_name", "write_run"]
