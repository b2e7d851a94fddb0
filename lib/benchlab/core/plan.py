"""`benchlab plan`: what a scale costs, before anyone asks for GPUs.

    benchlab plan --scale paper [--budget full|smoke] [--models DIR] [--detail] [--output FILE]

For each experiment (through core.experiments: the core imports none directly): its cases at the
scale and budget (count per kind, as core.session.Run.all_cases gives them; how many of them
`requires` lets run here), the weights, data and lm-eval tasks they need and whether each is here,
their parameters, the peak memory of the largest case and a GPU-time estimate. A package tells
what a case needs through an optional hook

    needs(case, config) -> {"models": [zoo spec or hub id whose weights it loads],
                            "shapes": [zoo spec it runs at random init: nothing to fetch],
                            "params": {label: int} (models outside the zoo), "tokens": int (it
                            runs through its model), "train": True (backward + optimizer step
                            over every weight), "peft" (adapters only: the base frozen) or False,
                            "data": [paths], "tasks": [lm-eval task names]}

A package without the hook counts its cases only. The estimates follow the rules of thumb in
LEGEND (printed under the table): parameters of a zoo spec are counted on the meta device (no
weights are read or allocated), memory and time from those counts.
"""

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import experiments
from .errors import BenchlabError
from .scale import BUDGETS, SCALES, check_budget, check_scale
from .session import Run

TFLOPS = 300e12  # effective H100 throughput (bf16 dense, ~30% of the 989 TFLOP/s peak)
TRAIN_BYTES = 16  # per parameter: fp32 weights 4 + grads 4 + AdamW moments 8
INFER_BYTES = 2  # per parameter: bf16 weights
PEFT_BYTES = 4  # per parameter: frozen fp32 weights (adapters, their grads and moments: small)
ACTIVATIONS = 1.25  # x the above, for activations, KV cache and allocator slack
CASE_S = 1.0  # per case that runs a model: setup, synchronization, the report's share
SMALL_CASE_S = 0.1  # per case that runs none (solvers, routers, kernels on random tensors)
LOAD_BYTES_S = 1e9  # reading weights once per experiment (bf16 bytes per second)
GIB = 2**30

LEGEND = f"""\
Rules of thumb (estimates for an allocation request, not measurements):
- params: the largest model a case runs (zoo specs counted on the meta device: `with \
torch.device("meta"): AutoModelForCausalLM.from_config(...)`); total = the distinct models.
- peak memory: params x {TRAIN_BYTES} B (fp32 weights, grads, AdamW moments) for full training, \
x {PEFT_BYTES} B (frozen fp32 weights) for PEFT (LoRA, adapters, BitFit), x {INFER_BYTES} B (bf16) \
for inference, then x {ACTIVATIONS} for activations; the largest case. \
MoE models are counted at their total parameters.
- GPU time: FLOPs = 6 x params x tokens (full training), 4 x (PEFT: no weight gradients) or \
2 x (inference) at \
{TFLOPS / 1e12:.0f} TFLOP/s effective (H100, bf16), + {CASE_S:g} s per case that runs tokens \
({SMALL_CASE_S:g} s per other case), + reading each model once at {LOAD_BYTES_S / 1e9:g} GB/s; \
fp32 cases run several times slower. Classes: \
seconds < 1 min <= minutes < 1 h <= hours < 1 day <= days.
- here?: present on this machine without the network (models folder, HF cache, paths); \
runnable here: the cases the package's `requires` does not skip offline (HF_HUB_OFFLINE=1)."""


@dataclass
class CaseCost:
    kind: str
    case_id: str
    params: int = 0
    peak_bytes: float = 0.0
    seconds: float = 0.0


@dataclass
class ExperimentPlan:
    experiment: str
    counts: dict[str, int] = field(default_factory=dict)  # kind -> cases
    runnable: int = 0
    models: dict[str, bool] = field(default_factory=dict)  # hub id -> present here
    data: dict[str, bool] = field(default_factory=dict)  # path -> present here
    tasks: dict[str, bool | None] = field(default_factory=dict)  # task -> present (None: unknown)
    model_params: dict[str, int] = field(default_factory=dict)  # model -> parameters
    costs: list[CaseCost] = field(default_factory=list)

    @property
    def cases(self) -> int:
        return sum(self.counts.values())

    @property
    def total_params(self) -> int:
        return sum(self.model_params.values())

    @property
    def peak(self) -> CaseCost | None:
        return max(self.costs, key=lambda c: c.peak_bytes, default=None)

    @property
    def seconds(self) -> float:
        load = sum(p * INFER_BYTES for p in self.model_params.values()) / LOAD_BYTES_S
        return sum(c.seconds for c in self.costs) + load


# -- parameters and presence ------------------------------------------------------------------

@functools.cache
def spec_params(name: str) -> int:
    """Parameters of zoo spec `name` (a name or a paper spec's hub id), counted on the meta
    device: nothing is allocated or downloaded; 0 for a name the zoo does not know."""
    import torch
    import transformers

    from .. import zoo

    spec = zoo.MODELS.get(name) if name in zoo.MODELS else next(
        (s for _, s in zoo.MODELS.items() if s.hub_id == name), None)
    if spec is None:
        return 0
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(zoo.hf_config(spec))
    return sum(p.numel() for p in model.parameters())


def hub_id(name: str) -> str:
    """The hub id of a zoo paper spec, else the name itself (a raw hub id or a folder)."""
    from .. import zoo

    spec = zoo.MODELS.get(name) if name in zoo.MODELS else None
    return spec.hub_id if spec is not None and spec.hub_id else name


def model_present(name: str, models_dir=None) -> bool:
    """Are the weights of `name` here, without touching the network: a local folder, the models
    folder's DIR/<org>--<name>/ (checked as zoo.resolve checks it), or an HF cache snapshot."""
    from ..zoo import hub

    if Path(os.fspath(name)).expanduser().is_dir():
        return True
    hid = hub_id(name)
    root = hub.models_folder(models_dir)
    if root is not None and (root / hub.folder_name(hid)).is_dir():
        try:
            hub.check_folder(root / hub.folder_name(hid), hid)
            return True
        except BenchlabError:
            return False
    return hub.cached_snapshot(hid) is not None


def task_present(task: str) -> bool | None:
    """Is the lm-eval task's dataset in the HF datasets cache? None when lm_eval cannot say."""
    try:
        from lm_eval.tasks import TaskManager

        cfg = TaskManager().task_index[task]["yaml_path"]
        import yaml

        path = (yaml.safe_load(Path(cfg).read_text()) or {}).get("dataset_path")
    except Exception:  # lm_eval absent or its layout changed: unknown, not absent
        return None
    if not path:
        return None
    cache = Path(os.environ.get("HF_DATASETS_CACHE") or Path(os.environ.get(
        "HF_HOME", Path.home() / ".cache" / "huggingface")) / "datasets")
    return (cache / path.replace("/", "___")).exists()


# -- the plan -----------------------------------------------------------------------------------

def cost_of(kind: str, case_id: str, need: dict) -> CaseCost:
    names = list(need.get("models", ())) + list(need.get("shapes", ()))
    params = max([spec_params(n) for n in names] + list((need.get("params") or {}).values())
                 + [0])
    train = need.get("train") or False
    per_param, per_token = {True: (TRAIN_BYTES, 6), "peft": (PEFT_BYTES, 4)}.get(
        train, (INFER_BYTES, 2))
    tokens = int(need.get("tokens") or 0)
    flops = per_token * params * tokens
    return CaseCost(kind, case_id, params, params * per_param * ACTIVATIONS,
                    (CASE_S if tokens else SMALL_CASE_S) + flops / TFLOPS)


def plan_experiment(name: str, scale: str, budget: str = "full", models_dir=None
                    ) -> ExperimentPlan:
    """The cases of experiment `name` at `scale` and `budget`, what they need and cost."""
    from .session import case_id_of

    run = Run(name, scale, budget=budget, device="cpu")
    needs = getattr(run.module, "needs", None)
    plan = ExperimentPlan(name)
    for kind in run.kinds:
        cases = run.cases(kind)
        plan.counts[kind] = len(cases)
        for case in cases:
            plan.runnable += run.missing(case) is None
            need = needs(case, run.config) if needs is not None else {}
            need = need or {}
            for m in need.get("models", ()):
                hid = hub_id(m)
                if hid not in plan.models:
                    plan.models[hid] = model_present(m, models_dir)
            for m in list(need.get("models", ())) + list(need.get("shapes", ())):
                plan.model_params.setdefault(hub_id(m), spec_params(m))
            plan.model_params.update(need.get("params") or {})
            for path in need.get("data", ()):
                plan.data.setdefault(str(path), Path(path).exists())
            for task in need.get("tasks", ()):
                if task not in plan.tasks:
                    plan.tasks[task] = task_present(task)
            plan.costs.append(cost_of(kind, case_id_of(case), need))
    return plan


def make_plan(scale: str, budget: str = "full", models_dir=None, only=None
              ) -> list[ExperimentPlan]:
    check_scale(scale)
    check_budget(budget)
    names = sorted(experiments.known())
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        raise BenchlabError(f"--experiments: unknown {unknown[0]!r} (known: {', '.join(names)})")
    from ..zoo import offline

    old = os.environ.get("BENCHLAB_MODELS")
    if models_dir is not None:  # zoo.resolve (the packages' `requires`) reads it from here
        os.environ["BENCHLAB_MODELS"] = str(Path(models_dir).resolve())
    try:
        with offline():  # what is here, not what the hub could give
            return [plan_experiment(n, scale, budget, models_dir) for n in names
                    if not only or n in only]
    finally:
        if old is None:
            os.environ.pop("BENCHLAB_MODELS", None)
        else:
            os.environ["BENCHLAB_MODELS"] = old


# -- the table ----------------------------------------------------------------------------------

def human(n: float, unit: str = "") -> str:
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}{unit}"
    return f"{n:.3g}{unit}"


def time_class(seconds: float) -> str:
    for limit, name in ((60, "seconds"), (3600, "minutes"), (86400, "hours")):
        if seconds < limit:
            return name
    return "days"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _present(items: dict, short=lambda k: k) -> str:
    if not items:
        return "none"
    mark = {True: "yes", False: "**no**", None: "?"}
    return "<br>".join(f"{short(k)} ({mark[v]})" for k, v in items.items())


def _short_path(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def _data(plan: ExperimentPlan) -> str:
    """Data paths, grouped by folder when there are many (one row per folder)."""
    if len(plan.data) <= 3:
        return _present(plan.data, _short_path)
    folders: dict[str, list[bool]] = {}
    for path, ok in plan.data.items():
        folders.setdefault(_short_path(str(Path(path).parent.parent)), []).append(ok)
    return "<br>".join(f"{folder}/ ({len(oks)} files, "
                       f"{'yes' if all(oks) else f'**{oks.count(False)} absent**'})"
                       for folder, oks in folders.items())


def table(plans: list[ExperimentPlan], scale: str, budget: str) -> str:
    """The markdown table of `plans`, a total row, and the legend."""
    head = ["experiment", "cases (per kind)", "runnable here", "models needed (here?)",
            "data needed (here?)", "total params", "peak memory (largest case)",
            "GPU time (H100)"]
    lines = [f"### `benchlab plan --scale {scale} --budget {budget}`", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in plans:
        kinds = ", ".join(f"{k} {n}" for k, n in p.counts.items() if n)
        peak = p.peak
        mem = f"{peak.peak_bytes / GIB:.1f} GiB ({peak.kind}[{peak.case_id}])" \
            if peak and peak.peak_bytes else "~0 (no model)"
        models = _present(p.models)
        if p.tasks:
            models += "<br>lm-eval: " + _present(p.tasks)
        lines.append(f"| {p.experiment} | {p.cases}: {kinds or 'none'} | {p.runnable} | "
                     f"{models} | {_data(p)} | {human(p.total_params)} | {mem} | "
                     f"{duration(p.seconds)} ({time_class(p.seconds)}) |")
    total = sum(p.seconds for p in plans)
    peak = max((p.peak.peak_bytes for p in plans if p.peak), default=0)
    lines.append(f"| **total** | {sum(p.cases for p in plans)} | "
                 f"{sum(p.runnable for p in plans)} | | | | {peak / GIB:.1f} GiB | "
                 f"{duration(total)} ({time_class(total)}) |")
    return "\n".join(lines + ["", LEGEND, ""])


def detail(plans: list[ExperimentPlan]) -> str:
    """One row per experiment and kind: cases, largest params, peak memory, GPU time."""
    lines = ["| experiment | kind | cases | largest params | peak memory | GPU time |",
             "|---|---|---|---|---|---|"]
    for p in plans:
        for kind in p.counts:
            costs = [c for c in p.costs if c.kind == kind]
            if not costs:
                continue
            secs = sum(c.seconds for c in costs)
            lines.append(f"| {p.experiment} | {kind} | {len(costs)} | "
                         f"{human(max(c.params for c in costs))} | "
                         f"{max(c.peak_bytes for c in costs) / GIB:.1f} GiB | {duration(secs)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """`benchlab plan ...`: print the table (and write it with --output); 0, or 2 on bad input."""
    import argparse
    import sys

    from .options import input_dir, output_file

    parser = argparse.ArgumentParser(prog="benchlab plan", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="paper", choices=SCALES, help="(default: paper)")
    parser.add_argument("--budget", default="full", choices=BUDGETS, help="(default: full)")
    parser.add_argument("--models", metavar="DIR", default=None, type=input_dir,
                        help="models folder to look in (default: $BENCHLAB_MODELS, HF cache)")
    parser.add_argument("--experiments", nargs="+", metavar="NAME", default=None)
    parser.add_argument("--detail", action="store_true", help="also a row per case kind")
    parser.add_argument("--output", metavar="FILE", type=output_file, default=None,
                        help="also write the markdown here")
    args = parser.parse_args(argv)
    try:
        plans = make_plan(args.scale, args.budget, args.models, args.experiments)
    except BenchlabError as e:
        sys.stderr.write(f"benchlab plan: error: {e}\n")
        return 2
    text = table(plans, args.scale, args.budget) + ("\n" + detail(plans) if args.detail else "")
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
