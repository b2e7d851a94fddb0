"""`benchlab moe-routing ...`: the seed's BH routing experiment runner, resumable.

    benchlab moe-routing run --output /tmp/moe_run --max-tokens 16 --checkpoint-interval 5
    benchlab moe-routing run --model allenai/OLMoE-1B-7B-0924 --scale paper --device cuda \
        --output runs/olmoe --max-tokens 100
    benchlab moe-routing report /tmp/moe_run/results.jsonl --output /tmp/moe_run

Every finished (config, prompt) result is appended at once to OUTPUT/results.jsonl (the core
result store, atomic lines), so a killed run loses nothing that finished; a rerun skips those
(resume is the default, --no-resume runs everything again and appends). Every
--checkpoint-interval results the report files (bh_routing_results.csv, analysis_summary.json,
REPORT.md, plots) are rebuilt from the store. The calibration null is stored with the run.
"""

import argparse
import dataclasses
from pathlib import Path

from ..core.errors import BenchlabError
from ..core.records import make_record, run_settings
from ..core.scale import SCALES, config_for
from ..core.store import ResultStore, record_key
from ..core.timing import resolve_device, time_fn

EXPERIMENT = "moe_routing"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchlab moe-routing", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run configs x prompts, resumable")
    run.add_argument("--model", default=None,
                     help="zoo name, hub id or local directory (default: the scale's model)")
    run.add_argument("--output", default="bh_routing_results", help="(default: %(default)s)")
    run.add_argument("--max-tokens", type=int, default=None,
                     help="new tokens per prompt (default: the scale's)")
    run.add_argument("--checkpoint-interval", type=int, default=5,
                     help="rebuild the report files every N results (default: %(default)s)")
    run.add_argument("--no-resume", action="store_true", help="rerun finished results too")
    run.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                     help="(default: %(default)s)")
    run.add_argument("--no-fp16", action="store_true", help="keep float32 on GPU (default: bf16)")
    run.add_argument("--scale", default="tiny", choices=SCALES, help="(default: %(default)s)")
    run.add_argument("--configs", default=None, help="comma-separated routing names (default: all)")
    run.add_argument("--prompts-per-category", type=int, default=None,
                     help="(default: the scale's, 3)")
    rep = sub.add_parser("report", help="rebuild the report from a results.jsonl")
    rep.add_argument("store")
    rep.add_argument("--output", default=None, help="(default: the store's folder)")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.command == "report":
        from . import report

        store = ResultStore(args.store)
        records = list(store.latest(experiment=EXPERIMENT).values())
        if not records:
            raise BenchlabError(f"{args.store}: no moe_routing records")
        report(records, Path(args.output or Path(args.store).parent))
        return 0
    return run(args)


def run(args) -> int:
    import torch
    from tqdm import tqdm

    from . import CONFIGS, generate_cases, inputs, report
    from .experiment import load_setup, prompt, run_prompt
    from .routers import ROUTINGS

    if args.checkpoint_interval < 1:
        raise BenchlabError("--checkpoint-interval: must be >= 1")
    config = config_for(CONFIGS, args.scale, where="moe_routing.CONFIGS")
    changes = {}
    if args.max_tokens is not None:
        if args.max_tokens < 1:
            raise BenchlabError("--max-tokens: must be >= 1")
        changes["max_new_tokens"] = args.max_tokens
    if args.configs:
        names = tuple(n.strip() for n in args.configs.split(","))
        for n in names:
            ROUTINGS.get(n)
        changes["routings"] = names
    if args.prompts_per_category is not None:
        changes["prompts_per_category"] = args.prompts_per_category
    config = dataclasses.replace(config, **changes)
    device = resolve_device(args.device)
    fp16 = not args.no_fp16
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(out / "results.jsonl")
    model = args.model or config.model
    run_info = run_settings(seed=0, device=device, dtype="bf16" if fp16 and device == "cuda"
                            else "float32", threads=torch.get_num_threads(), model=model)
    cases = generate_cases(config)

    def record_of(case, metrics=None) -> dict:
        """make_record, the plugin's record builder: kind "generate", the case, the config, the
        zoo inputs, the run settings; the code version covers moe_routing/."""
        return make_record(EXPERIMENT, "generate", case.id, metrics or {}, scale=args.scale,
                           params={"case": case}, config=config,
                           inputs=inputs(case, config) if model == config.model else {},
                           run=run_info, module_file=str(Path(__file__).with_name("__init__.py")))

    done = set() if args.no_resume else set(store.latest(experiment=EXPERIMENT))
    todo = [c for c in cases if record_key(record_of(c)) not in done]
    print(f"{len(cases) - len(todo)} of {len(cases)} results already in {store.path}; "
          f"running {len(todo)}")
    if todo:
        null_path = out / "calibration_null.safetensors"
        setup = load_setup(config, device, fp16, args.model,
                           str(null_path) if null_path.exists() and not args.no_resume else None)
        if not null_path.exists() or args.no_resume:
            setup.null.save(null_path)
        timer = lambda fn: min(time_fn(fn, device, warmup=1, trials=config.gen_rounds))  # noqa: E731
        for i, case in enumerate(tqdm(todo, desc="moe-routing", unit="run"), 1):
            metrics = run_prompt(setup, case.routing, prompt(case.prompt), config.max_new_tokens,
                                 timer)
            store.append(record_of(case, {**metrics, "null_digest": setup.null.digest(),
                                          "calib_tokens": setup.null.meta["tokens"]}))
            if i % args.checkpoint_interval == 0:
                report(_current(store, cases, record_of), out)
    report(_current(store, cases, record_of), out)
    print(f"wrote {out}/REPORT.md, bh_routing_results.csv, analysis_summary.json")
    return 0


def _current(store: ResultStore, cases, record_of) -> list[dict]:
    latest = store.latest(experiment=EXPERIMENT)
    keys = [record_key(record_of(c)) for c in cases]
    return [latest[k] for k in keys if k in latest]
