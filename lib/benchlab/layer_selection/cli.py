"""Seed-compatible commands: `benchlab layer-selection run | extract-scores | extract-norms`.

    D=../shared/data/layer_selection
    benchlab layer-selection run --scores $D/scores/opt125m_scores.json \
        --norms $D/norms/opt_125m_norms.json --cases $D/cases/experiment_cases.json \
        --output-dir /tmp/ls_run
    benchlab layer-selection extract-scores --model opt-tiny --output /tmp/opt_tiny_scores.json
    benchlab layer-selection extract-norms --model /path/to/saved_model --output /tmp/norms.json
"""

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..core.errors import BenchlabError
from . import data
from .experiment import evaluate

RUN_SOLVERS = ("exact", "ordered", "upstream", "milp")


def _fresh(path: Path, overwrite: bool) -> Path:
    if path.exists() and not overwrite:
        raise BenchlabError(f"{path}: exists; refusing to overwrite saved results "
                            "(pass --overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def run(args) -> int:
    model = data.load(args.scores, args.norms)
    name = args.model_name or Path(args.scores).stem.removesuffix("_scores")
    out = _fresh(Path(args.output_dir) / f"{name}_all_results.json", args.overwrite)
    raw = data.read_json(args.cases)
    cases = data.read_cases(args.cases)
    rescale = "budget_percentage" not in raw  # experiment cases are rescaled; scalability not
    factor = data.scale_factor(cases, model) if rescale else 1.0
    methods = list(data.VALUE_METHODS)
    if model.norms is None:
        methods = ["random", "alphaprun"]
    total = model.total_significance
    results = []
    for case in tqdm(cases, desc=f"{name} ({args.solver})"):
        budgets = np.asarray(case["budgets"], dtype=np.float64) * factor
        per = {}
        for method in methods:
            o = evaluate(model, budgets, method, args.solver, case["case_id"])
            per[method] = {"optimal_benefit": o.objective, "alphaprun_benefit": o.benefit,
                           "alphaprun_ratio": o.ratio,
                           "assignments": [list(iv) if iv else None for iv in o.intervals],
                           "is_valid": o.valid}
        results.append({"case_id": case["case_id"], "budgets": budgets.tolist(),
                        "original_budgets": [float(b) for b in case["budgets"]],
                        "scale_factor": factor, "results": per})
    out.write_text(json.dumps({
        "model_name": name, "scores_file": str(args.scores),
        "norms_file": str(args.norms) if args.norms else None, "solver": args.solver,
        "num_cases": len(results), "total_alphaprun_score": total, "results": results},
        indent=2))
    print(f"wrote {out}")
    return 0


def extract(args, kind: str) -> int:
    from .. import zoo
    from .scores import model_norms, model_scores

    out = _fresh(Path(args.output), args.overwrite)
    model = zoo.load(args.model)
    name = args.model_name or str(args.model)
    if kind == "scores":
        doc = model_scores(model, sparsity=args.sparsity, epsilon=args.epsilon, model_name=name)
    else:
        doc = model_norms(model, model_name=name)
    out.write_text(json.dumps(doc, indent=2))
    print(f"wrote {out} ({len(doc['layers'])} layers)")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchlab layer-selection",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="all value methods on every budget case of one model")
    r.add_argument("--scores", required=True, help="scores JSON (seed format)")
    r.add_argument("--norms", default=None, help="norms JSON (seed format; optional)")
    r.add_argument("--cases", required=True, help="experiment or scalability cases JSON")
    r.add_argument("--output-dir", required=True, help="writes <model>_all_results.json here")
    r.add_argument("--solver", choices=RUN_SOLVERS, default="exact",
                   help="(default: %(default)s)")
    r.add_argument("--model-name", default=None, help="(default: scores file stem)")
    r.add_argument("--overwrite", action="store_true", help="replace an existing results file")
    for kind in ("scores", "norms"):
        e = sub.add_parser(f"extract-{kind}", help=f"write the seed {kind} JSON of a model")
        e.add_argument("--model", required=True, help="zoo spec, hub id or local model directory")
        e.add_argument("--output", required=True, help="JSON file to write")
        e.add_argument("--model-name", default=None, help="(default: --model)")
        e.add_argument("--overwrite", action="store_true", help="replace an existing file")
        if kind == "scores":
            e.add_argument("--sparsity", type=float, default=0.85, help="(default: %(default)s)")
            e.add_argument("--epsilon", type=float, default=0.9, help="(default: %(default)s)")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args)
    return extract(args, args.command.removeprefix("extract-"))
