"""The seed repository's file formats: an adapter on core.session.Run records (commands: cli.py).

The CLI's `run` measures one record of kind `files` per (model, budget case): `Files` is its Run
config (one model's score/norm files, one case file), `FileCase` a case; the metrics are
`ratio_<method>`, `benefit_<method>`, `objective_<method>`, `valid_<method>` and
`assignments_<method>`. `results_doc` writes the seed's results document from those records:
`{model}_all_results.json`, `{model}/case_001_results.json` ... or
`{model}_scalability_results.json` (seed short model names such as opt_125m). Every problem with
an input is a one-line BenchlabError naming the file and the field, raised before any write.
"""

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import fail, read_json
from . import data

KIND = "files"  # the Run kind of the CLI's records (measure.KINDS)


def short_name(scores_path) -> str:
    """The seed's short model name of a scores file: opt125m_scores.json -> opt_125m."""
    name = Path(scores_path).name
    for short, (scores, _) in data.SHARED_MODELS.items():
        if name == scores:
            return short
    stem = name.removesuffix(".json").removesuffix("_scores").replace("-", "_")
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
    cases = data.read_cases(path)
    if "budget_percentage" not in read_json(path):
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


@dataclass(frozen=True)
class Files:
    """The CLI run's config (core.session.Run's `config`): one model's seed score and norm files,
    one case file, the solver. The file contents are the records' inputs (their sha256)."""

    model: str  # seed short name (file names and case filtering)
    scores: str
    norms: str | None
    cases: str
    solver: str = "exact"


@dataclass(frozen=True)
class FileCase:
    id: str
    model: str
    case_id: int
    M: int  # verifiers
    scalability: bool  # a scalability case file (budgets as given) or experiment cases (rescaled)
    solver: str


def _stamp(path) -> tuple | None:
    st = Path(path).stat() if path is not None else None
    return (str(path), st.st_mtime_ns, st.st_size) if st else None


@functools.lru_cache(maxsize=16)
def _load(config: Files, *stamps) -> tuple[data.ModelData, list[dict], bool]:
    model = data.load(config.scores, config.norms, name=config.model)
    return (model, *model_cases(config.cases, config.model))


def load_files(config: Files) -> tuple[data.ModelData, list[dict], bool]:
    """(model, its cases, is_scalability), read and checked once per file version."""
    return _load(config, *(_stamp(p) for p in (config.scores, config.norms, config.cases)))


def file_inputs(config: Files) -> dict[str, str]:
    """The records' inputs: sha256 of the score, norm and case files."""
    from ..core.provenance import file_digest

    files = {"scores": config.scores, "norms": config.norms, "cases": config.cases}
    return {k: file_digest(p) for k, p in files.items() if p is not None}


def file_cases(config) -> list[FileCase]:
    """The `files` kind's cases: the case file's cases for the config's model (none unless the
    config is a `Files`, so the benchmark scales have no such cases)."""
    if not isinstance(config, Files):
        return []
    _, cases, scal = load_files(config)
    tag = "scal" if scal else "exp"
    return [FileCase(f"{config.model}-{tag}{c['case_id']:03d}-{config.solver}", config.model,
                     c["case_id"], len(c["budgets"]), scal, config.solver) for c in cases]


def methods_of(model: data.ModelData) -> list[str]:
    """Every value method, or random and alphaprun only when the model has no norms file."""
    return list(data.VALUE_METHODS) if model.norms is not None else ["random", "alphaprun"]


def scale_of(model: data.ModelData, cases: list[dict], scal: bool) -> float:
    """Experiment cases are rescaled to the model as the seed runner does; scalability budgets
    are used as given."""
    return 1.0 if scal else data.scale_factor(cases, model)


def budgets_of(model: data.ModelData, cases: list[dict], scal: bool, case_id: int) -> np.ndarray:
    case = next(c for c in cases if c["case_id"] == case_id)
    return np.asarray(case["budgets"], dtype=np.float64) * scale_of(model, cases, scal)


def method_metrics(method: str, outcome) -> dict:
    """One value method's metrics of a `files` record (instances.Outcome -> names)."""
    return {f"objective_{method}": outcome.objective, f"benefit_{method}": outcome.benefit,
            f"ratio_{method}": outcome.ratio, f"valid_{method}": outcome.valid,
            f"assignments_{method}": [list(iv) if iv else None for iv in outcome.intervals]}


def _method_result(metrics: dict, method: str) -> dict:
    return {"optimal_benefit": metrics[f"objective_{method}"],
            "alphaprun_benefit": metrics[f"benefit_{method}"],
            "alphaprun_ratio": metrics[f"ratio_{method}"],
            "assignments": metrics[f"assignments_{method}"],
            "is_valid": metrics[f"valid_{method}"]}


def results_doc(config: Files, records: list[dict]) -> dict:
    """The seed's results document of one model over its case file, from the `files` records
    of its cases (Run.run's, stored ones included)."""
    model, cases, scal = load_files(config)
    by_id = {r["config"]["case"]["case_id"]: r["metrics"] for r in records}
    factor = scale_of(model, cases, scal)
    results = []
    for case in cases:
        metrics = by_id[case["case_id"]]
        budgets = budgets_of(model, cases, scal, case["case_id"])
        row = {"case_id": case["case_id"], "budgets": budgets.tolist()}
        if scal:
            row |= {"num_verifiers": len(budgets), "total_budget": float(budgets.sum())}
        else:
            row |= {"original_budgets": [float(b) for b in case["budgets"]],
                    "scale_factor": factor}
        per = {m: _method_result(metrics, m) for m in methods_of(model)}
        results.append(row | {"results": per})
    doc = {"model_name": config.model, "scores_file": config.scores, "norms_file": config.norms,
           "solver": config.solver, "source_cases_file": config.cases,
           "num_cases": len(results), "total_alphaprun_score": model.total_significance,
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

def read_results(path) -> dict:
    """A `*_all_results.json` / `*_scalability_results.json`, checked field by field."""
    doc = read_json(path)
    for f in ("model_name", "results"):
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
    """method -> alphaprun_ratio over the document's cases (data.method_order)."""
    found = {}
    for r in doc["results"]:
        for m, v in r["results"].items():
            found.setdefault(m, []).append(v["alphaprun_ratio"])
    return {m: np.asarray(found[m], dtype=np.float64) for m in data.method_order(found)}


def scal_series(doc: dict) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(verifier count M per case, method -> ratios) of a scalability results document."""
    Ms = np.array([r.get("num_verifiers", len(r["budgets"])) for r in doc["results"]])
    return Ms, ratios(doc)


def figure_series(exp: list[dict], scal: list[dict]) -> tuple[dict, dict]:
    """report.seed_figures' inputs from experiment and scalability results documents."""
    return ({d["model_name"]: (ratios(d), d.get("solver", "?")) for d in exp},
            {d["model_name"]: scal_series(d) for d in scal})


# -- the seed's budget cases (generate_cases.py): a quarter of the models' mean cost ------------

COST_ORDER = ("llama2_70b", "llama2_13b", "llama2_7b", "opt_125m")  # the seed's order (its mean)


def model_costs(scores_dir) -> dict[str, float]:
    """Total parameter count of each shared model whose score file is in `scores_dir`."""
    out = {}
    for name in COST_ORDER:
        path = Path(scores_dir) / data.SHARED_MODELS[name][0]
        if path.is_file():
            out[name] = data.read_scores(path).total_cost
    return out


def budget_cases(target: float, *, num_cases: int = 100, num_verifiers: int = 3,
                 seed: int = 42) -> list[dict]:
    """The seed's budget cases: a total of target x U(0.15, 0.35) / 0.25 per case, split five
    ways in fifths of the cases (random shares, one verifier at 70%, decreasing and increasing
    exp(-+linspace(0, 2)) shares, equal shares), rounded to cents; numpy's legacy generator
    seeded with `seed`, drawn in the seed's order."""
    rng = np.random.RandomState(seed)
    M = num_verifiers
    out = []
    for case_id in range(1, num_cases + 1):
        total = target * (rng.uniform(0.15, 0.35) / 0.25)
        if case_id <= num_cases * 0.2:
            b = rng.uniform(0.1 * total / M, 2.0 * total / M, M)
            b = b / b.sum() * total
        elif case_id <= num_cases * 0.4:
            b = np.ones(M) * total / M
            b[rng.randint(0, M)] = total * 0.7
            b = b / b.sum() * total
        elif case_id <= num_cases * 0.8:
            sign = -1.0 if case_id <= num_cases * 0.6 else 1.0
            shares = np.exp(sign * np.linspace(0, 2, M))
            b = shares / shares.sum() * total
        else:
            b = np.ones(M) * total / M
        b = np.round(b, 2)
        out.append({"case_id": case_id, "num_verifiers": M, "budgets": b.tolist(),
                    "total_budget": float(b.sum())})
    return out

