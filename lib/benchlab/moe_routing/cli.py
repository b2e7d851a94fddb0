"""`benchlab moe-routing ...`: the seed's BH routing experiment runner, resumable.

    benchlab moe-routing run --output /tmp/moe_run --max-tokens 16 --checkpoint-interval 5
    benchlab moe-routing run --model allenai/OLMoE-1B-7B-0924 --scale paper --device cuda \
        --output runs/olmoe --max-tokens 100
    benchlab moe-routing report /tmp/moe_run/store.jsonl --output /tmp/moe_run
    benchlab moe-routing frontier --output runs/moe_frontier --report reports/moe_routing/frontier

`run` is a core.session.Run of the "generate" cases (the scale's config with the command line's
options applied) plus the seed's output formats. Every finished (config, prompt) record is
appended at once to OUTPUT/store.jsonl (the core result store, atomic lines), so a killed run
loses nothing that finished; a rerun skips those (resume is the default, --no-resume runs
everything again and appends); `benchlab compare` and `benchlab report` read the store. Every
--checkpoint-interval results the report files (bh_routing_results.csv, analysis_summary.json,
REPORT.md, plots/) are rebuilt from the store and checkpoints/latest_checkpoint.json points
at the store (the seed's checkpoint: the store is the checkpoint). The calibration nulls (one per
BH routing, calibrated under it) are stored in OUTPUT/nulls and checked against the model before
reuse. The console output is also written to OUTPUT/experiment_log.txt.

`frontier` runs the quality/compute frontier study (frontier.py) into its own run directory
(resumable: finished rules are kept in OUTPUT/points) and writes FRONTIER.md there and, with
--report, in that folder too.
"""

import argparse
import dataclasses
from pathlib import Path

from ..core.errors import BenchlabError
from ..core.options import bounded, output_dir
from ..core.scale import SCALES, config_for
from ..core.store import ResultStore
from ..core.timing import Timer, resolve_device

EXPERIMENT, KIND = "moe_routing", "generate"
STORE = "store.jsonl"  # OUTPUT/store.jsonl: the core result store of the run's records


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchlab moe-routing", description=__doc__.splitlines()[0])
    model = argparse.ArgumentParser(add_help=False)  # the options of run and frontier
    model.add_argument("--model", default=None,
                       help="zoo name, hub id or local directory (default: the scale's model)")
    model.add_argument("--scale", default="tiny", choices=SCALES, help="(default: %(default)s)")
    model.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                       help="(default: %(default)s)")
    model.add_argument("--no-fp16", action="store_true", help="keep float32 on GPU (default: bf16)")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", parents=[model], help="run configs x prompts, resumable")
    run.add_argument("--output", default="./results", type=output_dir,
                     help="(default: %(default)s)")
    run.add_argument("--max-tokens", type=bounded(int, lo=1), default=None,
                     help="new tokens per prompt (default: the scale's)")
    run.add_argument("--checkpoint-interval", type=bounded(int, lo=1), default=5,
                     help="rebuild the report files every N results (default: %(default)s)")
    run.add_argument("--no-resume", action="store_true", help="rerun finished results too")
    run.add_argument("--configs", default=None, help="comma-separated routing names (default: all)")
    run.add_argument("--prompts-per-category", type=bounded(int, lo=1), default=None,
                     help="(default: the scale's, 3)")
    fr = sub.add_parser("frontier", parents=[model],
                        help="the quality/compute frontier study, resumable")
    fr.add_argument("--output", default="./results/frontier", type=output_dir,
                    help="(default: %(default)s)")
    fr.add_argument("--report", default=None, type=output_dir,
                    help="also write the report files here (e.g. reports/moe_routing/frontier)")
    fr.add_argument("--rules", default=None, help="comma-separated rule names (default: all)")
    rep = sub.add_parser("report", help="rebuild the report from a run's store.jsonl")
    rep.add_argument("store")
    rep.add_argument("--output", default=None, type=output_dir,
                     help="(default: the store's folder)")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.command == "report":
        from . import report

        if not Path(args.store).is_file():
            raise BenchlabError(f"{args.store}: no such file (a result store: store.jsonl)")
        store = ResultStore(args.store)
        records = list(store.latest(experiment=EXPERIMENT).values())
        if not records:
            raise BenchlabError(f"{args.store}: no moe_routing records")
        report(records, Path(args.output or Path(args.store).parent))
        return 0
    if args.command == "frontier":
        return frontier(args)
    return run(args)


class Console:
    """print() that also appends to OUTPUT/experiment_log.txt (the seed's console log)."""

    def __init__(self, path: Path):
        self.path = path

    def __call__(self, *parts) -> None:
        line = " ".join(str(p) for p in parts)
        print(line, flush=True)
        with open(self.path, "a") as f:
            f.write(line + "\n")


def frontier(args) -> int:
    import torch
    from tqdm import tqdm

    from . import CONFIGS
    from . import frontier as fr
    from .frontier_report import frontier_report
    from .harness import load_setup

    config = config_for(CONFIGS, args.scale, where="moe_routing.CONFIGS")
    if config.frontier_heldout_tokens:  # the study's own held-out length
        config = dataclasses.replace(config, heldout_tokens=config.frontier_heldout_tokens)
    rs = fr.rules(config)
    if args.rules:
        rs = [fr.rule(config, n.strip()) for n in args.rules.split(",")]
        names = {r.name for r in rs}
        rs += [r for r in fr.rules(config) if r.name not in names and (
            fr.family(r) == fr.TOPK_FAMILY or fr.family(r).startswith(fr.THRESHOLD_PREFIX))
        ]  # top-k is the baseline of every comparison, the threshold family BH's
    device = resolve_device(args.device)
    if device == "cpu":
        torch.set_num_threads(1)  # reproducible reductions, and polite on a shared machine
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    say = Console(out / "frontier_log.txt")
    say(f"frontier: {len(rs)} rules, output {out}")
    setup = load_setup(config, device, not args.no_fp16, args.model, str(out / "nulls"))
    points = {r.name: fr.evaluate(setup, r, out) for r in tqdm(rs, desc="frontier", unit="rule")}
    drift = {}
    for label, *_ in config.frontier_bh:
        name = f"{label}@{config.drift_alpha:g}"
        if name in points:
            drift[name] = fr.drift(setup, fr.rule(config, name))
    n_seq, seq_len = setup.heldout.shape
    st = fr.study(config, points, rs, n_seq)
    rows = fr.summarize(points, rs, config.bootstrap, n_seq, fr.split(config, n_seq)[
        "confirmation"])
    sentence = fr.verdict_sentence(st, seq_len)
    meta = {"model": setup.model_name, "model_digest": setup.model_digest,
            "heldout": int(setup.heldout.numel()), "calib": int(setup.calib.numel()),
            "bootstrap": config.bootstrap, "drift_alpha": config.drift_alpha,
            "experts": setup.model.config.num_experts, "scale": args.scale}
    for d in [out] + ([Path(args.report)] if args.report else []):
        frontier_report(rows, st, drift, sentence, meta, d)
    say(sentence)
    say(f"wrote {out}/FRONTIER.md" + (f" and {args.report}/FRONTIER.md" if args.report else ""))
    return 0


def run_of(args):
    """The `Run` of `benchlab moe-routing run`: the scale's config with the command line's
    routings, prompts, new tokens, precision and model applied; the store OUTPUT/store.jsonl."""
    from ..core.session import Run
    from . import CONFIGS
    from .routers import ROUTINGS

    config = config_for(CONFIGS, args.scale, where="moe_routing.CONFIGS")
    changes = {"fp16": not args.no_fp16}
    if args.max_tokens is not None:
        changes["max_new_tokens"] = args.max_tokens
    if args.configs:
        names = tuple(n.strip() for n in args.configs.split(","))
        for n in names:
            ROUTINGS.get(n)
        changes["routings"] = names
    if args.prompts_per_category is not None:
        changes["prompts_per_category"] = args.prompts_per_category
    if args.model is not None and args.model != config.model:
        changes.update(model=args.model, source="load")  # a hub id or local directory
    config = dataclasses.replace(config, **changes)
    device = resolve_device(args.device)
    dtype = "bf16" if config.fp16 and device == "cuda" else "float32"
    return Run(EXPERIMENT, args.scale, device=device, store=Path(args.output) / STORE,
               config=config, dtype=dtype)


def run(args) -> int:
    from tqdm import tqdm

    from ..core.session import seed_everything
    from . import report
    from .harness import load_setup
    from .measure import measure_generate

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    run = run_of(args)
    cases = run.cases(KIND)
    todo = run.all_cases([KIND]) if args.no_resume else run.pending([KIND])
    say = Console(out / "experiment_log.txt")
    say(f"{len(cases) - len(todo)} of {len(cases)} results already in {run.store.path}; "
        f"running {len(todo)}")
    if todo:
        config = run.config
        setup = load_setup(config, run.device, config.fp16, None, str(out / "nulls"))
        for name in dict.fromkeys(c.routing for _, c in todo):  # every null checked (or made)
            setup.null_for(name)  # before any case runs: a null of another model stops here
        for i, (kind, case) in enumerate(tqdm(todo, desc="moe-routing", unit="run"), 1):
            seed_everything(run.seed)  # as Run.metrics does before a kind's measure
            metrics = measure_generate(case, config, Timer(None, run.device), setup)
            run.save(run.record(kind, case, metrics))
            say(f"[{i}/{len(todo)}] {case.routing} {case.prompt}: "
                f"{metrics['avg_experts']:.2f} experts/token, {metrics['inference_time']:.3f} s, "
                f"held-out KL {metrics['heldout_kl']:.4f}")
            if i % args.checkpoint_interval == 0:
                report(run.stored([KIND]), out)
                checkpoint(out, run.store, i, len(todo), case)
    report(run.stored([KIND]), out)
    checkpoint(out, run.store, len(todo), len(todo), None)
    say(f"wrote {out}/REPORT.md, bh_routing_results.csv, analysis_summary.json, plots/")
    return 0


def checkpoint(out: Path, store: ResultStore, done: int, total: int, case) -> None:
    """checkpoints/latest_checkpoint.json: a pointer to the store (which holds every result)."""
    import json

    from ..core.store import atomic_path

    with atomic_path(out / "checkpoints" / "latest_checkpoint.json") as tmp:
        tmp.write_text(json.dumps({"store": str(store.path.name), "done_this_run": done,
                                   "todo_this_run": total,
                                   "last_case": case.id if case else None,
                                   "note": "the store holds every finished result; rerun "
                                           "`benchlab moe-routing run` with the same --output "
                                           "to resume"}, indent=1) + "\n")
