"""Seed-compatible commands: `benchlab layer-selection run | generate-cases | plot |
extract-scores | extract-norms` (file layout: layer_selection/seed.py).

    D=../shared/data/layer_selection
    benchlab layer-selection run --scores $D/scores/opt125m_scores.json \
        --norms $D/norms/opt_125m_norms.json --cases $D/cases/experiment_cases.json \
        --output-dir /tmp/ls_run --plot
    benchlab layer-selection run --models opt_125m llama2_7b llama2_13b llama2_70b \
        --scores_dir $D/scores --norms_dir $D/norms --cases $D/cases/experiment_cases.json \
        --scalability_cases $D/cases/scalability_cases.json --output-dir exp --plot --combined
    benchlab layer-selection generate-cases --base $D/cases/experiment_cases.json --output-dir g
    benchlab layer-selection plot --results-dir exp
    benchlab layer-selection extract-scores --model opt-tiny --output /tmp/opt_tiny_scores.json
    benchlab layer-selection extract-norms --model /path/to/saved_model --output /tmp/norms.json
"""

import argparse
import json
from pathlib import Path

from tqdm import tqdm

from ..core.errors import fail
from ..core.options import bounded, file_name
from . import data, seed

RUN_SOLVERS = ("exact", "ordered", "upstream", "milp")


def _jobs(args) -> list[tuple[str, Path, Path | None]]:
    """(seed short name, scores file, norms file) of each model to run."""
    if args.models:
        if not args.scores_dir:
            raise fail("command line", "--scores_dir", "required with --models")
        return [(m, seed.find_file(args.scores_dir, m, "scores"),
                 seed.find_file(args.norms_dir, m, "norms") if args.norms_dir else None)
                for m in args.models]
    if not args.scores:
        raise fail("command line", "--scores", "required (or --models with --scores_dir)")
    name = args.model_name or seed.short_name(args.scores)
    return [(name, Path(args.scores), Path(args.norms) if args.norms else None)]


def run(args) -> int:
    """Check every input and every output path first, then run, then draw."""
    outdir = Path(args.output_dir)
    if outdir.exists() and not outdir.is_dir():
        raise fail(str(outdir), "--output-dir", "is a file, not a folder")
    files = [f for f, skip in ((args.cases, args.skip_experiments),
                               (args.scalability_cases, args.skip_scalability)) if f and not skip]
    if not files:
        raise fail("command line", "--cases", "no case file left to run (--skip_* dropped all)")
    plan, kept = [], []
    for name, scores, norms in _jobs(args):
        model = data.load(scores, norms, name=name)
        for path in files:
            cases, scal = seed.model_cases(path, name)
            target = outdir / seed.output_names(name, scal)[0]
            if target.exists() and args.skip_existing:
                kept.append((seed.read_results(target), scal))
            elif target.exists() and not args.overwrite:
                raise fail(str(target), "--output-dir", "exists; refusing to overwrite saved "
                           "results (pass --overwrite or --skip_existing)")
            else:
                plan.append((model, name, cases, scal, path, scores, norms))
    done = list(kept)
    for model, name, cases, scal, path, scores, norms in plan:
        bar = lambda it, n=name, s=scal: tqdm(it, desc=f"{n} {'scal' if s else 'exp'} "  # noqa: E731
                                             f"({args.solver})")
        doc = seed.run_model(model, name, cases, scal, args.solver, path, scores, norms, bar)
        written = seed.write_run(outdir, doc, scal)
        print(f"wrote {written[0]}" + (f" and {len(written) - 1} case files" if scal is False
                                       else ""))
        done.append((doc, scal))
    exp = [d for d, s in done if not s]
    scal = [d for d, s in done if s]
    if args.plot:
        for doc in exp:
            print("wrote " + ", ".join(str(p) for p in seed.plot_comparison(doc, outdir)))
        if scal:
            print(f"wrote {seed.plot_scalability(scal, outdir)}")
    if args.combined and exp:
        print("wrote " + ", ".join(str(p) for p in seed.plot_combined(exp, outdir)))
    return 0


def generate(args) -> int:
    out = Path(args.output_dir)
    if (out / "all_cases.json").exists() and not args.overwrite:
        raise fail(str(out / "all_cases.json"), "--output-dir", "exists (pass --overwrite)")
    base = seed.unique_originals(data.read_cases(args.base))
    cases = seed.generate_cases(base, perturbations=args.num_perturbations,
                                factor=args.perturbation_factor, seed=args.seed)
    for c in cases:
        seed.write_json(out / "cases" / f"case_{c['case_id']:03d}.json", c)
    seed.write_json(out / "all_cases.json", {
        "source_file": str(args.base), "seed": args.seed, "num_original_cases": len(base),
        "num_perturbations_per_case": args.num_perturbations,
        "perturbation_factor": args.perturbation_factor, "total_perturbed_cases": len(cases),
        "cases": cases})
    print(f"wrote {out / 'all_cases.json'} and {len(cases)} files under {out / 'cases'}")
    return 0


def plot(args) -> int:
    for path in seed.plot_dir(args.results_dir, args.output_dir):
        print(f"wrote {path}")
    return 0


def extract(args, kind: str) -> int:
    from .. import zoo
    from .scores import model_norms, model_scores

    out = Path(args.output)
    if kind == "scores" and args.sparsity == 0:
        raise fail("command line", "--sparsity", "must be > 0 (significance is 1 / ratio)")
    if out.exists() and not args.overwrite:
        raise fail(str(out), "--output", "exists; refusing to overwrite (pass --overwrite)")
    out.parent.mkdir(parents=True, exist_ok=True)
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
    r = sub.add_parser("run", help="all value methods on every budget case of one or more models")
    r.add_argument("--scores", help="scores JSON of one model (seed format)")
    r.add_argument("--norms", default=None, help="norms JSON (seed format; optional)")
    r.add_argument("--models", nargs="+", default=None, type=file_name,
                   help="seed short names (opt_125m llama2_7b ...), files from --scores_dir")
    r.add_argument("--scores_dir", "--scores-dir", dest="scores_dir", default=None)
    r.add_argument("--norms_dir", "--norms-dir", dest="norms_dir", default=None)
    r.add_argument("--cases", default=None, help="experiment (or scalability) cases JSON")
    r.add_argument("--scalability_cases", "--scalability-cases", dest="scalability_cases",
                   default=None, help="scalability cases JSON (cases filtered by model_name)")
    r.add_argument("--output-dir", "--output_dir", dest="output_dir", required=True,
                   help="writes {model}_all_results.json, {model}/case_XXX_results.json, "
                   "{model}_scalability_results.json here")
    r.add_argument("--solver", choices=RUN_SOLVERS, default="exact",
                   help="(default: %(default)s)")
    r.add_argument("--model-name", "--model_name", dest="model_name", default=None, type=file_name,
                   help="(default: the seed short name of the scores file)")
    r.add_argument("--plot", action="store_true",
                   help="{model}_comparison.png/.txt and scalability_plot.png")
    r.add_argument("--combined", action="store_true", help="combined_comparison.png/.txt")
    r.add_argument("--skip_experiments", "--skip-experiments", action="store_true")
    r.add_argument("--skip_scalability", "--skip-scalability", action="store_true")
    r.add_argument("--skip_existing", "--skip-existing", action="store_true",
                   help="keep results files that exist (resume), plot from them")
    r.add_argument("--overwrite", action="store_true", help="replace existing results files")
    g = sub.add_parser("generate-cases", help="perturbed budget cases (seed 42): "
                       "cases/case_001.json ... and all_cases.json")
    g.add_argument("--base", required=True, help="cases JSON whose (original) budgets are used")
    g.add_argument("--output-dir", "--output_dir", dest="output_dir", required=True)
    g.add_argument("--num_perturbations", type=bounded(int, lo=1), default=10,
                   help="(default: %(default)s)")
    g.add_argument("--perturbation_factor", type=bounded(float, lo=0), default=0.1,
                   help="budgets times U(1-f, 1+f) (default: %(default)s)")
    g.add_argument("--seed", type=bounded(int, lo=0), default=42, help="(default: %(default)s)")
    g.add_argument("--overwrite", action="store_true")
    p = sub.add_parser("plot", help="comparison and scalability figures from run outputs")
    p.add_argument("--results-dir", "--results_dir", dest="results_dir", required=True)
    p.add_argument("--output-dir", "--output_dir", dest="output_dir", default=None,
                   help="(default: the results directory)")
    for kind in ("scores", "norms"):
        e = sub.add_parser(f"extract-{kind}", help=f"write the seed {kind} JSON of a model")
        e.add_argument("--model", required=True, help="zoo spec, hub id or local model directory")
        e.add_argument("--output", required=True, help="JSON file to write")
        e.add_argument("--model-name", default=None, help="(default: --model)")
        e.add_argument("--overwrite", action="store_true", help="replace an existing file")
        if kind == "scores":
            e.add_argument("--sparsity", type=bounded(float, lo=0, hi=1), default=0.85,
                           help="global pruning ratio, in (0, 1] (default: %(default)s)")
            e.add_argument("--epsilon", type=bounded(float, lo=0, hi=1), default=0.9,
                           help="ratios span [1 - eps, 1 + eps] (default: %(default)s)")
    args = parser.parse_args(argv)
    commands = {"run": run, "generate-cases": generate, "plot": plot}
    if args.command in commands:
        return commands[args.command](args)
    return extract(args, args.command.removeprefix("extract-"))
