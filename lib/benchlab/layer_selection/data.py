"""Seed JSON formats (scores, norms, budget cases), validated on read; values per method.

    python -c "from benchlab.layer_selection import data; print(data.load_model('opt_125m'))"

Every problem with a file is a one-line BenchlabError `file: field: problem`.
"""

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..core.errors import BenchlabError, fail, read_json

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "layer_selection"
# short name -> (scores file, norms file) in the shared folder; the seed used both spellings
SHARED_MODELS = {
    "opt_125m": ("opt125m_scores.json", "opt_125m_norms.json"),
    "llama2_7b": ("llama2-7b_scores.json", "llama2_7b_norms.json"),
    "llama2_13b": ("llama2-13b_scores.json", "llama2_13b_norms.json"),
    "llama2_70b": ("llama2-70b_scores.json", "llama2_70b_norms.json"),
}
VALUE_METHODS = ("random", "norm_1", "norm_2", "norm_inf", "alphaprun")
SCORE_FIELDS = ("index", "name", "num_parameters", "significance_score")
NORM_FIELDS = ("index", "name", "norm_1", "norm_2", "norm_inf")


def shared_dir() -> Path:
    """The shared data folder; BENCHLAB_LS_DATA overrides it (e.g. a copy on a GPU machine)."""
    return Path(os.environ.get("BENCHLAB_LS_DATA", SHARED)).resolve()


@dataclass(frozen=True, eq=False)  # hashed by identity: cached per loaded model
class ModelData:
    """One model's layers: costs (parameter counts), significance, and weight norms if known."""

    name: str
    names: tuple
    costs: np.ndarray = field(repr=False)
    significance: np.ndarray = field(repr=False)
    norms: dict | None = field(default=None, repr=False)  # norm_1/norm_2/norm_inf -> array

    @property
    def total_cost(self) -> float:
        return float(self.costs.sum())

    @property
    def total_significance(self) -> float:
        return float(np.sum(self.significance))


def _number(x) -> bool:
    return not isinstance(x, bool) and isinstance(x, int | float) and bool(np.isfinite(x))


def _layers(data: dict, path, fields: tuple) -> list[dict]:
    layers = data.get("layers")
    if not isinstance(layers, list) or not layers:
        raise fail(str(path), "layers", "missing or empty")
    for i, layer in enumerate(layers):
        for f in fields:
            if not isinstance(layer, dict) or f not in layer:
                raise fail(str(path), f"layers[{i}].{f}", "missing")
        for f in fields[2:]:
            v = layer[f]
            if not _number(v):
                raise fail(str(path), f"layers[{i}].{f}", f"not a finite number ({v!r})")
            if v < 0:
                raise fail(str(path), f"layers[{i}].{f}", f"negative ({v})")
        if isinstance(layer["index"], bool) or layer["index"] != i:
            raise fail(str(path), f"layers[{i}].index", f"is {layer['index']!r}, expected {i}")
    return layers


def _column(layers: list[dict], key: str) -> np.ndarray:
    return np.array([lay[key] for lay in layers], dtype=np.float64)


def from_layers(name: str, layers: list[dict], norm_layers: list[dict] | None = None) -> ModelData:
    """A model from the "layers" of a seed scores JSON (and of a norms JSON), unchecked."""
    norms = None if norm_layers is None else {k: _column(norm_layers, k) for k in NORM_FIELDS[2:]}
    return ModelData(name, tuple(lay["name"] for lay in layers), _column(layers, "num_parameters"),
                     _column(layers, "significance_score"), norms)


def read_scores(path) -> ModelData:
    data = read_json(path)
    if "model_name" not in data:
        raise fail(str(path), "model_name", "missing")
    return from_layers(str(data["model_name"]), _layers(data, path, SCORE_FIELDS))


def read_norms(path, model: ModelData | None = None) -> dict:
    data = read_json(path)
    layers = _layers(data, path, NORM_FIELDS)
    if model is not None and len(layers) != len(model.names):
        raise fail(str(path), "layers", f"{len(layers)} layers, scores have {len(model.names)}")
    for key in ("norm_1", "norm_2"):
        for i, lay in enumerate(layers):
            if lay[key] == 0:
                raise fail(str(path), f"layers[{i}].{key}", "zero (its value is 1/norm)")
    return {k: _column(layers, k) for k in NORM_FIELDS[2:]}


def load(scores_path, norms_path=None, name: str | None = None) -> ModelData:
    model = read_scores(scores_path)
    norms = read_norms(norms_path, model) if norms_path is not None else None
    return replace(model, name=name or model.name, norms=norms)


def load_model(short: str) -> ModelData:
    """One of the four shared models by short name (opt_125m, llama2_7b, llama2_13b, llama2_70b)."""
    if short not in SHARED_MODELS:
        raise BenchlabError(f"unknown shared model {short!r} (known: {', '.join(SHARED_MODELS)})")
    root = shared_dir()
    scores, norms = SHARED_MODELS[short]
    return load(root / "scores" / scores, root / "norms" / norms, name=short)


def read_cases(path) -> list[dict]:
    """Budget cases [{"case_id", "budgets", ...}]: unique case ids in [0, 2**32) (they seed the
    random method); budgets of one length (or num_verifiers), finite, >= 0, summing to > 0."""
    data = read_json(path)
    cases = data.get("cases")
    if not isinstance(cases, list) or not cases:
        raise fail(str(path), "cases", "missing or empty")
    seen = {}
    for i, case in enumerate(cases):
        for f in ("case_id", "budgets"):
            if not isinstance(case, dict) or f not in case:
                raise fail(str(path), f"cases[{i}].{f}", "missing")
        cid = case["case_id"]
        if isinstance(cid, bool) or not isinstance(cid, int) or not 0 <= cid < 2**32:
            raise fail(str(path), f"cases[{i}].case_id", f"not an integer in [0, 2**32): {cid!r}")
        if cid in seen:
            raise fail(str(path), f"cases[{i}].case_id", f"{cid} repeats cases[{seen[cid]}]")
        seen[cid] = i
        b = case["budgets"]
        if not isinstance(b, list) or not all(_number(x) for x in b):
            raise fail(str(path), f"cases[{i}].budgets", "not a list of finite numbers")
        want = case.get("num_verifiers", len(cases[0]["budgets"]))
        if len(b) != want:
            raise fail(str(path), f"cases[{i}].budgets", f"length {len(b)}, expected {want}")
        if any(x < 0 for x in b):
            raise fail(str(path), f"cases[{i}].budgets", "negative")
        if sum(b) <= 0:
            raise fail(str(path), f"cases[{i}].budgets", "empty or all zero (nothing to select)")
    return cases


def scale_factor(cases: list[dict], model: ModelData) -> float:
    """The seed's per-model rescale: (0.25 x total cost / 4) / (sum of the first case's budgets)."""
    return (0.25 * model.total_cost / 4) / float(sum(cases[0]["budgets"]))


def experiment_cases() -> list[dict]:
    return read_cases(shared_dir() / "cases" / "experiment_cases.json")


def scalability_cases() -> list[dict]:
    return read_cases(shared_dir() / "cases" / "scalability_cases.json")


def method_order(methods) -> list[str]:
    """The value methods among `methods` in VALUE_METHODS order, any others after by name."""
    return [m for m in VALUE_METHODS if m in methods] + sorted(set(methods) - set(VALUE_METHODS))


def values_for(model: ModelData, method: str, case_id: int = 0) -> np.ndarray:
    """The objective each method optimizes (DESIGN §3); its selection is scored by significance."""
    L = len(model.names)
    if method == "alphaprun":
        return model.significance
    if method == "random":  # legacy generator seeded with the case id, as the seed runner
        p = np.arange(L) / (L - 1) if L > 1 else np.full(1, 0.5)
        w = 0.1 + 0.9 * (1.0 - (2.0 * p - 1.0) ** 2)
        base = np.random.RandomState(int(case_id)).randint(1, 1000000, size=L)
        return np.maximum(1, (base * w).astype(np.int64)).astype(np.float64)
    if method in ("norm_1", "norm_2", "norm_inf"):
        if model.norms is None:
            raise BenchlabError(f"{model.name}: norms: needed for method {method!r}")
        x = model.norms[method]
        return x if method == "norm_inf" else 1.0 / x
    raise BenchlabError(f"values: method: unknown {method!r}; choose {', '.join(VALUE_METHODS)}")
