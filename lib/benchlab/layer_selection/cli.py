"""Seed-compatible commands: `benchlab layer-selection run | generate-cases | plot |
extract-scores | extract-norms`, typed as the seed repository types them (file formats:
layer_selection/seed_format.py).

    D=../shared/data/layer_selection
    benchlab layer-selection generate-cases --num_cases 100 --num_verifiers 3 --output_dir cases
    benchlab layer-selection run --scores $D/scores/opt125m_scores.json \
        --norms $D/norms/opt_125m_norms.json --cases_dir cases --model_name opt_125m \
        --output_dir results --plot
    benchlab layer-selection run --models opt_125m llama2_7b llama2_13b llama2_70b \
        --scores_dir $D/scores --norms_dir $D/norms --cases $D/cases/experiment_cases.json \
        --scalability_cases $D/cases/scalability_cases.json --output-dir exp --plot --combined
    benchlab layer-selection generate-cases --base $D/cases/experiment_cases.json --output-dir g
    benchlab layer-selection plot --results exp/opt_125m_all_results.json --output opt.png
    benchlab layer-selection plot --results-dir exp
    benchlab layer-selection extract-norms --model /path/to/saved_model --output /tmp/norms.json

`run` is core.session.Run plus the seed's file format: one `files` record per (model, budget
case) in `<output dir>/store.jsonl` (`benchlab compare` and `report` read it), results files
written from them; a rerun into the same folder measures only the cases not stored yet.
"""

import argparse
import difflib
import json
import os
from pathlib import Path

from ..core.errors import BenchlabError, fail
from ..core.options import bounded, file_name, input_dir, input_file, output_dir, output_file
from . import data, seed_format
from .report import plot_combined, plot_comparison, plot_scalability, seed_figures

RUN_SOLVERS = ("exact", "ordered", "upstream", "milp")
STORE = "store.jsonl"  # the run's records, in its output folder
SCALE = "cli"  # the records' scale: a CLI run's config is its files, not a benchmark scale


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one-line BenchlabErrors (`benchlab: error: ...`, exit 2)."""

    def error(self, message):
        raise BenchlabError(f"{self.prog}: {message} (see {self.prog} --help)")


def _jobs(args) -> list[tuple[str, Path, Path | None]]:
    """(seed short name, scores file, norms file) of each model to run."""
    if args.models:
        if not args.scores_dir:
            raise fail("command line", "--scores_dir", "required with --models")
        if args.scores or args.model_name:
            raise fail("command line", "--models", "runs the models' files from --scores_dir; "
                       "for one scores file use --scores FILE [--model_name NAME] instead")
        return [(m, seed_format.find_file(args.scores_dir, m, "scores"),
                 seed_format.find_file(args.norms_dir, m, "norms") if args.norms_dir else None)
                for m in args.models]
    if not args.scores:
        raise fail("command line", "--scores", "required (or --models with --scores_dir)")
    name = args.model_name or seed_format.short_name(args.scores)
    return [(name, Path(args.scores), Path(args.norms) if args.norms else None)]


def _cases_file(args):
    """--cases FILE, or the seed's --cases_dir DIR (its all_cases.json, as generate-cases
    writes it)."""
    if args.cases_dir is None:
        return args.cases
    if args.cases:
        raise fail("command line", "--cases_dir", "give --cases FILE or --cases_dir DIR, not both")
    path = Path(args.cases_dir) / "all_cases.json"
    if not path.is_file():
        raise fail(str(args.cases_dir), "--cases_dir", "no all_cases.json here (generate-cases "
                   "writes one; or pass the cases file with --cases FILE)")
    return str(path)


def run(args) -> int:
    """Check every input and every output path first, then measure (Run), write, draw."""
    from ..core.session import Run

    outdir = Path(args.output_dir)
    if outdir.exists() and not outdir.is_dir():
        raise fail(str(outdir), "--output-dir", "is a file, not a folder")
    files = [f for f, skip in ((_cases_file(args), args.skip_experiments),
                               (args.scalability_cases, args.skip_scalability)) if f and not skip]
    if not files:
        raise fail("command line", "--cases", "no case file left to run (--skip_* dropped all)")
    plan, done = [], []
    for name, scores, norms in _jobs(args):
        data.load(scores, norms, name=name)  # a bad file fails here, before anything is written
        for path in files:
            config = seed_format.Files(name, str(scores), str(norms) if norms else None,
                                       str(path), args.solver)
            session = Run("layer_selection", SCALE, device="cpu", store=outdir / STORE,
                          config=config)
            scal = session.cases(seed_format.KIND)[0].scalability  # checks the model's case file
            target = outdir / seed_format.output_names(name, scal)[0]
            if target.exists() and args.skip_existing:
                done.append((seed_format.read_results(target), scal))
            elif target.exists() and not args.overwrite and session.pending([seed_format.KIND]):
                raise fail(str(target), "--output-dir", f"exists, and {STORE} does not hold "
                           "its results for these inputs; refusing to overwrite saved results "
                           "(pass --overwrite or --skip_existing)")
            else:
                plan.append((session, config, scal))
    if plan:
        plan[0][0].store.check_writable()
    for session, config, scal in plan:
        todo = len(session.pending([seed_format.KIND]))
        records = session.run([seed_format.KIND])
        doc = seed_format.results_doc(config, records)
        written = seed_format.write_run(outdir, doc, scal)
        print(f"wrote {written[0]}" + (f" and {len(written) - 1} case files" if not scal else "")
              + f" ({todo} cases measured, {len(records) - todo} read from {STORE})")
        done.append((doc, scal))
    exp, scal = seed_format.figure_series([d for d, s in done if not s], [d for d, s in done if s])
    paths = seed_figures(exp, scal, outdir, combined=False) if args.plot else []
    if args.combined and exp:
        paths += plot_combined({name: ratios for name, (ratios, _) in exp.items()}, outdir)
    for path in paths:
        print(f"wrote {path}")
    return 0


def generate(args) -> int:
    """The seed's budget cases (--num_cases, --num_verifiers), or perturbations of --base's."""
    out = Path(args.output_dir)
    if (out / "all_cases.json").exists() and not args.overwrite:
        raise fail(str(out / "all_cases.json"), "--output-dir", "exists (pass --overwrite)")
    if args.base is None:
        for flag, value in (("--num_perturbations", args.num_perturbations),
                            ("--perturbation_factor", args.perturbation_factor)):
            if value is not None:
                raise fail("command line", flag, "perturbs the cases of --base FILE; without "
                           "--base, generate-cases takes --num_cases and --num_verifiers")
        return _generate_budgets(args, out)
    for flag, value in (("--num_cases", args.num_cases), ("--num_verifiers", args.num_verifiers),
                        ("--scores_dir", args.scores_dir)):
        if value is not None:
            raise fail("command line", flag, "makes new budget cases (without --base); with "
                       "--base use --num_perturbations and --perturbation_factor")
    perturbations = 10 if args.num_perturbations is None else args.num_perturbations
    factor = 0.1 if args.perturbation_factor is None else args.perturbation_factor
    base = seed_format.unique_originals(data.read_cases(args.base))
    cases = seed_format.generate_cases(base, perturbations=perturbations, factor=factor,
                                       seed=args.seed)
    for c in cases:
        seed_format.write_json(out / "cases" / f"case_{c['case_id']:03d}.json", c)
    seed_format.write_json(out / "all_cases.json", {
        "source_file": str(args.base), "seed": args.seed, "num_original_cases": len(base),
        "num_perturbations_per_case": perturbations, "perturbation_factor": factor,
        "total_perturbed_cases": len(cases), "cases": cases})
    print(f"wrote {out / 'all_cases.json'} and {len(cases)} files under {out / 'cases'}")
    return 0


def _generate_budgets(args, out: Path) -> int:
    scores_dir = Path(args.scores_dir) if args.scores_dir else data.shared_dir() / "scores"
    costs = seed_format.model_costs(scores_dir)
    if not costs:
        raise fail(str(scores_dir), "--scores_dir", "no score file of "
                   f"{', '.join(data.SHARED_MODELS)} (budgets are a quarter of their mean cost)")
    target = float(sum(c / 4 for c in costs.values()) / len(costs))
    n = 100 if args.num_cases is None else args.num_cases
    M = 3 if args.num_verifiers is None else args.num_verifiers
    cases = seed_format.budget_cases(target, num_cases=n, num_verifiers=M, seed=args.seed)
    for c in cases:
        seed_format.write_json(out / f"case_{c['case_id']:03d}.json", c)
    seed_format.write_json(out / "all_cases.json",
                           {"num_cases": n, "num_verifiers": M, "seed": args.seed, "cases": cases})
    print(f"wrote {out / 'all_cases.json'} and {n} case files (budgets around "
          f"{target:,.0f}: a quarter of the mean cost of {', '.join(costs)})")
    return 0


def plot_dir(folder, outdir=None) -> list[Path]:
    """Every seed figure and text summary from a results folder's own files."""
    series = seed_format.figure_series(*seed_format.read_results_dir(folder))
    return seed_figures(*series, Path(outdir or folder))


def plot_results(results: str, output: str, combined: bool = False) -> list[Path]:
    """The seed's plot_results.py: one results file -> its figure at `output` (and the .txt
    beside it); a folder, a comma-separated list or --combined -> the combined figure."""
    png = Path(output)
    if png.suffix.lower() != ".png":
        raise fail(output, "--output", "the suite draws PNG figures: name a .png file")
    if "," in results:
        paths, combined = [Path(p.strip()) for p in results.split(",") if p.strip()], True
    elif Path(results).is_dir():
        paths, combined = sorted(Path(results).glob("*_all_results.json")), True
        if not paths:
            raise fail(results, "--results", "no *_all_results.json files in this folder")
    else:
        paths = [Path(results)]
    docs = [seed_format.read_results(p) for p in paths]
    if combined:
        return plot_combined({d["model_name"]: seed_format.ratios(d) for d in docs}, png=png)
    doc = docs[0]
    if "verifier_counts" in doc or any("num_verifiers" in r for r in doc["results"]):
        return [plot_scalability({doc["model_name"]: seed_format.scal_series(doc)}, png=png)]
    return plot_comparison(doc["model_name"], seed_format.ratios(doc), png=png,
                           solver=doc.get("solver", "?"))


def plot(args) -> int:
    if args.results is None:
        if args.output:
            raise fail("command line", "--output", "names the figure of --results FILE; with "
                       "--results-dir use --output-dir DIR")
        if not args.results_dir:
            raise fail("command line", "--results", "required: a results JSON file (or folder) "
                       "with --output FILE.png, or --results-dir DIR for every figure")
        paths = plot_dir(args.results_dir, args.output_dir)
    else:
        if args.results_dir:
            raise fail("command line", "--results-dir", "give --results or --results-dir, "
                       "not both")
        if args.output_dir or not args.output:
            raise fail("command line", "--output", "required with --results: the .png to "
                       "write (--output-dir goes with --results-dir)")
        paths = plot_results(args.results, args.output, args.combined)
    for path in paths:
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


def _unknown(parser, command: str, extra: list[str]) -> BenchlabError:
    """One line for options the command does not take, with the nearest option it does take."""
    options = sorted({s for a in parser._actions for s in a.option_strings})
    hints = []
    for arg in extra:
        near = difflib.get_close_matches(arg.split("=")[0], options, n=1, cutoff=0.6)
        if arg.startswith("-") and near:
            hints.append(f"{arg}: did you mean {near[0]}?")
    hint = "; ".join(hints) or f"options: {', '.join(o for o in options if o.startswith('--'))}"
    return BenchlabError(f"benchlab layer-selection {command}: unsupported arguments: "
                         f"{' '.join(extra)} ({hint})")


def main(argv: list[str]) -> int:
    shared = os.environ.get("BENCHLAB_LS_DATA")
    if shared is not None and not Path(shared).is_dir():
        raise fail("BENCHLAB_LS_DATA", shared, "no such folder (the shared layer-selection data)")
    parser = Parser(prog="benchlab layer-selection", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="all value methods on every budget case of one or more models")
    r.add_argument("--scores", type=input_file, help="scores JSON of one model (seed format)")
    r.add_argument("--norms", type=input_file, help="norms JSON (seed format; optional)")
    r.add_argument("--models", nargs="+", type=file_name,
                   help="seed short names (opt_125m llama2_7b ...), files from --scores_dir")
    r.add_argument("--scores_dir", "--scores-dir", type=input_dir)
    r.add_argument("--norms_dir", "--norms-dir", type=input_dir)
    r.add_argument("--cases", "--experiment_cases", type=input_file,
                   help="experiment (or scalability) cases JSON")
    r.add_argument("--cases_dir", "--cases-dir",
                   help="a folder with all_cases.json (generate-cases' output), as the seed")
    r.add_argument("--scalability_cases", "--scalability-cases", type=input_file,
                   help="scalability cases JSON (cases filtered by model_name)")
    r.add_argument("--output-dir", "--output_dir", default="results", type=output_dir,
                   help="writes store.jsonl (the records), {model}_all_results.json, "
                   "{model}/case_XXX_results.json, {model}_scalability_results.json here "
                   "(default: %(default)s)")
    r.add_argument("--solver", choices=RUN_SOLVERS, default="exact", help="(default: %(default)s)")
    r.add_argument("--model-name", "--model_name", type=file_name,
                   help="(default: the seed short name of the scores file)")
    r.add_argument("--plot", action="store_true",
                   help="{model}_comparison.png/.txt and scalability_plot.png")
    r.add_argument("--combined", action="store_true", help="combined_comparison.png/.txt")
    r.add_argument("--skip_experiments", "--skip-experiments", action="store_true")
    r.add_argument("--skip_scalability", "--skip-scalability", action="store_true")
    keep = r.add_mutually_exclusive_group()
    keep.add_argument("--skip_existing", "--skip-existing", action="store_true",
                      help="keep results files that exist as they are, plot from them")
    keep.add_argument("--overwrite", action="store_true",
                      help="replace results files that hold other results")
    g = sub.add_parser("generate-cases", help="the seed's budget cases (--num_cases, "
                       "--num_verifiers), or perturbations of --base's cases (seed 42)")
    g.add_argument("--num_cases", "--num-cases", type=bounded(int, lo=1),
                   help="budget cases to make (default: 100)")
    g.add_argument("--num_verifiers", "--num-verifiers", type=bounded(int, lo=1),
                   help="verifiers per case (default: 3)")
    g.add_argument("--scores_dir", "--scores-dir",
                   help="score files whose model costs set the budgets (default: shared data)")
    g.add_argument("--base", help="perturb this cases JSON's (original) budgets: "
                   "cases/case_001.json ... and all_cases.json")
    g.add_argument("--output-dir", "--output_dir", default="cases", type=output_dir,
                   help="(default: %(default)s)")
    g.add_argument("--num_perturbations", type=bounded(int, lo=1), help="with --base (default: 10)")
    g.add_argument("--perturbation_factor", type=bounded(float, lo=0, lt=1),
                   help="with --base: budgets times U(1-f, 1+f) (default: 0.1)")
    g.add_argument("--seed", type=bounded(int, lo=0), default=42, help="(default: %(default)s)")
    g.add_argument("--overwrite", action="store_true")
    p = sub.add_parser("plot", help="comparison and scalability figures from run outputs")
    p.add_argument("--results", help="a results JSON file, a folder of *_all_results.json or a "
                   "comma-separated list (the seed's plot_results.py)")
    p.add_argument("--output", help="the .png to write with --results")
    p.add_argument("--combined", action="store_true",
                   help="with --results: one figure of every model")
    p.add_argument("--results-dir", "--results_dir", help="every figure of a run's output folder")
    p.add_argument("--output-dir", "--output_dir",
                   help="with --results-dir (default: the results directory)")
    for kind in ("scores", "norms"):
        e = sub.add_parser(f"extract-{kind}", help=f"write the seed {kind} JSON of a model")
        e.add_argument("--model", required=True, help="zoo spec, hub id or local model directory")
        e.add_argument("--output", required=True, type=output_file, help="JSON file to write")
        e.add_argument("--model-name", help="(default: --model)")
        e.add_argument("--overwrite", action="store_true", help="replace an existing file")
        if kind == "scores":
            e.add_argument("--sparsity", type=bounded(float, lo=0, hi=1), default=0.85,
                           help="global pruning ratio, in (0, 1] (default: %(default)s)")
            e.add_argument("--epsilon", type=bounded(float, lo=0, hi=1), default=0.9,
                           help="ratios span [1 - eps, 1 + eps] (default: %(default)s)")
    args, extra = parser.parse_known_args(argv)
    if extra:
        raise _unknown(sub.choices[args.command], args.command, extra)
    commands = {"run": run, "generate-cases": generate, "plot": plot}
    if args.command in commands:
        return commands[args.command](args)
    return extract(args, args.command.removeprefix("extract-"))
