"""A hostile run over every `benchlab` command (issue 36): each option that takes a number, a
file or a folder, crossed with the bad values of its kind (fuzz_inputs), in-process. Each case
must exit non-zero with one stderr line naming the option or file, no traceback, and leave
every file that existed byte-identical, before any model work starts (lm-timing run/sweep are
fuzzed in tests/lm_timing)."""

import pytest
from fuzz_inputs import LIMIT_S, VALUE, check, expand, option_names

from benchlab.layer_selection import data as ls_data

V = VALUE
SHARED = ls_data.shared_dir()
SCORES = SHARED / "scores" / "opt125m_scores.json"
CASES_JSON = SHARED / "cases" / "experiment_cases.json"
SUBMIT = ["submit", "--executor", "local", "--results", "res"]
LS_RUN = ["layer-selection", "run", "--scores", SCORES, "--output-dir", "o"]
GEN = ["layer-selection", "generate-cases", "--output-dir", "cases"]
FT = ["long-exposure", "finetune", "--out", "ft", "--steps", "1", "--records", "20"]
ACC = ["long-exposure", "accuracy", "--out", "acc", "--steps", "1", "--records", "20"]
DDP = ["long-exposure", "ddp-scaling", "--out", "ddp"]
MS = ["long-exposure", "model-step", "--scale", "tiny"]
AT = ["long-exposure", "attn-study", "--out", "at"]
EV = ["long-exposure", "lm-eval", "--checkpoint", "missing-ckpt"]
MOE = ["moe-routing", "run", "--output", "moe"]
NG = ["prepare", "nanogpt", "--synthetic", "4"]
SL_ALL = ["sublora", "run-all", "--results_dir", "sl"]
SL_AN = ["sublora", "analyze", "--results_dir", "."]

# (name, argv with the VALUE slot, the option it fills, generator kind)
CASES = [
    # core commands
    ("report", ["report", V], "path", "in_json"),
    ("report", ["report", "missing.jsonl", "--outdir", V], "--outdir", "out_dir"),
    ("publish", ["publish", V, "--scale", "tiny", "--outdir", "pub"], "path", "in_json"),
    ("publish", ["publish", "x.json", "--scale", "tiny", "--outdir", V], "--outdir", "out_dir"),
    ("compare", ["compare", V, "missing.json"], "base", "in_json"),
    ("compare", ["compare", "missing.json", "missing2.json", "--margin", V], "--margin",
     "open_fraction"),
    ("baseline", ["baseline", V, "--output", "base.json"], "path", "in_json"),
    ("baseline", ["baseline", "x.jsonl", "--output", V], "--output", "out_file"),
    ("submit", [*SUBMIT, "--shards", V, "--", "bench/"], "--shards", "positive"),
    ("submit", [*SUBMIT, "--time", V, "--", "bench/"], "--time", "positive"),
    ("submit", [*SUBMIT, "--nodes", V, "--", "bench/"], "--nodes", "positive"),
    ("submit", [*SUBMIT, "--tasks-per-node", V, "--", "bench/"], "--tasks-per-node", "positive"),
    ("submit", [*SUBMIT, "--cpus-per-job", V, "--", "bench/"], "--cpus-per-job", "positive"),
    ("submit", [*SUBMIT, "--gpus-per-job", V, "--", "bench/"], "--gpus-per-job", "count0"),
    ("submit", ["submit", "--executor", "local", "--results", V, "--", "bench/"], "--results",
     "out_dir"),
    ("status", ["status", V], "results", "in_dir"),
    ("plan", ["plan", "--scale", "tiny", "--output", V], "--output", "out_file"),
    ("plan", ["plan", "--scale", "tiny", "--models", V], "--models", "in_dir"),
    ("gpu-check", ["gpu-check", "--out", V, "--device", "cpu"], "--out", "out_dir"),
    ("gpu-check", ["gpu-check", "--out", "g", "--device", "cpu", "--models", V], "--models",
     "in_dir"),
    # zoo and prepare
    ("paper-shapes", ["zoo", "paper-shapes", "--layers", V, "ps"], "--layers", "positive"),
    ("paper-shapes", ["zoo", "paper-shapes", "--seed", V, "ps"], "--seed", "seed"),
    ("paper-shapes", ["zoo", "paper-shapes", V], "DIR", "out_dir"),
    ("nanogpt", [*NG, "--val-fraction", V, "ng"], "--val-fraction", "open_fraction"),
    ("nanogpt", [*NG, "--seed", V, "ng"], "--seed", "seed"),
    ("nanogpt", ["prepare", "nanogpt", "--synthetic", V, "ng"], "--synthetic", "positive"),
    ("nanogpt", [*NG, V], "output", "out_dir"),
    ("nanogpt", ["prepare", "nanogpt", V, "ng"], "input", "in_text"),
    ("npy", ["prepare", "npy", V, "t.npy"], "input", "in_text"),
    ("npy", ["prepare", "npy", "in.txt", V], "output", "out_file"),
    ("jsonl", ["prepare", "jsonl", V, "t.jsonl"], "input", "in_text"),
    ("jsonl", ["prepare", "jsonl", "in.txt", V], "output", "out_file"),
    # layer selection
    ("ls-run", [*LS_RUN[:2], "--cases", CASES_JSON, "--scores", V, "--output-dir", "o"],
     "--scores", "in_json"),
    ("ls-run", [*LS_RUN, "--cases", CASES_JSON, "--norms", V], "--norms", "in_json"),
    ("ls-run", [*LS_RUN, "--cases", V], "--cases", "in_json"),
    ("ls-run", [*LS_RUN, "--cases_dir", V], "--cases_dir", "in_dir"),
    ("ls-run", [*LS_RUN, "--scalability_cases", V], "--scalability_cases", "in_json"),
    ("ls-run", ["layer-selection", "run", "--scores", SCORES, "--output-dir", V],
     "--output-dir", "out_dir"),
    ("ls-run", ["layer-selection", "run", "--models", "opt125m", "--scores_dir", V,
                "--output-dir", "o"], "--scores_dir", "in_dir"),
    ("ls-gen", [*GEN, "--num_cases", V], "--num_cases", "positive"),
    ("ls-gen", [*GEN, "--num_verifiers", V], "--num_verifiers", "positive"),
    ("ls-gen", [*GEN, "--num_perturbations", V], "--num_perturbations", "positive"),
    ("ls-gen", [*GEN, "--perturbation_factor", V], "--perturbation_factor", "open_fraction"),
    ("ls-gen", [*GEN, "--seed", V], "--seed", "seed"),
    ("ls-gen", [*GEN, "--base", V], "--base", "in_json"),
    ("ls-gen", ["layer-selection", "generate-cases", "--output-dir", V], "--output-dir",
     "out_dir"),
    ("ls-plot", ["layer-selection", "plot", "--results", V, "--output", "p.png"], "--results",
     "in_json"),
    ("ls-plot", ["layer-selection", "plot", "--results", "r.json", "--output", V], "--output",
     "out_file"),
    ("ls-plot", ["layer-selection", "plot", "--results-dir", V], "--results-dir", "in_dir"),
    ("ls-scores", ["layer-selection", "extract-scores", "--model", "opt-tiny", "--output", "s.json",
                   "--sparsity", V], "--sparsity", "fraction"),
    ("ls-scores", ["layer-selection", "extract-scores", "--model", "opt-tiny", "--output", "s.json",
                   "--epsilon", V], "--epsilon", "fraction"),
    ("ls-scores", ["layer-selection", "extract-scores", "--model", "opt-tiny", "--output", V],
     "--output", "out_file"),
    ("ls-norms", ["layer-selection", "extract-norms", "--model", "opt-tiny", "--output", V],
     "--output", "out_file"),
    ("ls-norms", ["layer-selection", "extract-norms", "--model", V, "--output", "n.json"],
     "--model", "in_dir"),
    # moe routing
    ("moe-run", [*MOE, "--max-tokens", V], "--max-tokens", "positive"),
    ("moe-run", [*MOE, "--checkpoint-interval", V], "--checkpoint-interval", "positive"),
    ("moe-run", [*MOE, "--prompts-per-category", V], "--prompts-per-category", "positive"),
    ("moe-run", ["moe-routing", "run", "--output", V], "--output", "out_dir"),
    ("moe-frontier", ["moe-routing", "frontier", "--output", V], "--output", "out_dir"),
    ("moe-frontier", ["moe-routing", "frontier", "--output", "fr", "--report", V], "--report",
     "out_dir"),
    ("moe-report", ["moe-routing", "report", V], "store", "in_json"),
    ("moe-report", ["moe-routing", "report", "missing.jsonl", "--output", V], "--output",
     "out_dir"),
    # long exposure
    ("le-records", ["long-exposure", "records", "--out", "r.jsonl", "--n", V], "--n", "positive"),
    ("le-records", ["long-exposure", "records", "--out", "r.jsonl", "--seed", V], "--seed", "seed"),
    ("le-records", ["long-exposure", "records", "--out", V], "--out", "out_file"),
    ("le-finetune", [*FT, "--seq-len", V], "--seq-len", "positive"),
    ("le-finetune", [*FT[:4], "--records", "20", "--steps", V], "--steps", "positive"),
    ("le-finetune", [*FT, "--batch-size", V], "--batch-size", "positive"),
    ("le-finetune", [*FT, "--lr", V], "--lr", "rate"),
    ("le-finetune", [*FT[:6], "--records", V], "--records", "positive"),
    ("le-finetune", [*FT, "--seed", V], "--seed", "seed"),
    ("le-finetune", [*FT, "--save-every", V], "--save-every", "positive"),
    ("le-finetune", [*FT, "--data", V], "--data", "in_text"),
    ("le-finetune", ["long-exposure", "finetune", "--steps", "1", "--out", V], "--out",
     "out_dir"),
    ("le-accuracy", [*ACC, "--lr", V], "--lr", "rate"),
    ("le-accuracy", [*ACC, "--limit", V], "--limit", "positive"),
    ("le-accuracy", [*ACC, "--n-docs", V], "--n-docs", "positive"),
    ("le-accuracy", [*ACC, "--eval-batch-size", V], "--eval-batch-size", "positive"),
    ("le-accuracy", [*ACC, "--seed", V], "--seed", "seed"),
    ("le-accuracy", [*ACC, "--work", V], "--work", "out_dir"),
    ("le-accuracy", ["long-exposure", "accuracy", "--steps", "1", "--out", V], "--out",
     "out_dir"),
    ("le-lm-eval", [*EV, "--limit", V], "--limit", "positive"),
    ("le-lm-eval", [*EV, "--batch-size", V], "--batch-size", "positive"),
    ("le-lm-eval", ["long-exposure", "lm-eval", "--checkpoint", V], "--checkpoint", "in_dir"),
    ("le-lm-eval", ["long-exposure", "lm-eval", "--checkpoint", "ck", "--out", V], "--out",
     "out_file"),
    ("le-model-step", [*MS, "--density", V], "--density", "fraction"),
    ("le-model-step", [*MS, "--seq-len", V], "--seq-len", "positive"),
    ("le-model-step", [*MS, "--rounds", V], "--rounds", "positive"),
    ("le-model-step", [*MS, "--threads", V], "--threads", "positive"),
    ("le-model-step", [*MS, "--out", V], "--out", "out_file"),
    ("le-attn-study", [*AT, "--seq-len", V], "--seq-len", "positive"),
    ("le-attn-study", [*AT, "--rounds", V], "--rounds", "positive"),
    ("le-attn-study", [*AT, "--flex-block", V], "--flex-block", "positive"),
    ("le-attn-study", ["long-exposure", "attn-study", "--out", V], "--out", "out_dir"),
    ("le-ddp", [*DDP, "--procs", V], "--procs", "positive"),
    ("le-ddp", [*DDP, "--repeats", V], "--repeats", "positive"),
    ("le-ddp", [*DDP, "--steps", V], "--steps", "positive"),
    ("le-ddp", ["long-exposure", "ddp-scaling", "--out", V], "--out", "out_dir"),
    # lm-timing aggregate (run and sweep: tests/lm_timing)
    ("lmt-aggregate", ["lm-timing", "aggregate", "--results-dir", V, "--output", "s.md"],
     "--results-dir", "in_dir"),
    ("lmt-aggregate", ["lm-timing", "aggregate", "--results-dir", "rd", "--output", V],
     "--output", "out_file"),
    # sublora
    ("sl-run-all", [*SL_ALL, "--dims", V], "--dims", "positive"),
    ("sl-run-all", [*SL_ALL, "--seeds", V], "--seeds", "seed"),
    ("sl-run-all", [*SL_ALL, "--data-dir", V], "--data-dir", "in_dir"),
    ("sl-run-all", [*SL_ALL, "--config-file", V], "--config-file", "in_text"),
    ("sl-run-all", ["sublora", "run-all", "--results_dir", V], "--results_dir", "out_dir"),
    ("sl-analyze", ["sublora", "analyze", "--results_dir", V], "--results_dir", "in_dir"),
    ("sl-analyze", [*SL_AN, "--budgets", V], "--budgets", "positive"),
    ("sl-analyze", [*SL_AN, "--seeds", V], "--seeds", "seed"),
    ("sl-analyze", ["sublora", "analyze", "--results_dir", ".", "--output_dir", V],
     "--output_dir", "out_dir"),
    ("sl-train", ["sublora", "train", "--config-file", V], "--config-file", "in_text"),
    ("sl-train", ["sublora", "train", "--data-dir", V], "--data-dir", "in_dir"),
    ("sl-train", ["sublora", "train", "--login.out_dir=sl", V], "data.batch_size", "positive"),
    ("sl-eval", ["sublora", "eval-bounds", "--checkpoint", V], "--checkpoint", "in_dir"),
]


# Inputs still accepted, by the file that would refuse them (strict: a fix makes them XPASS).
ACCEPTED: dict[str, list[str]] = {}
OPEN = {case: owner for owner, cases in ACCEPTED.items() for case in cases}


def _marks(row_id: str):
    owner = OPEN.get(row_id)
    return [pytest.mark.xfail(strict=True, reason=f"accepted: open in {owner}")] if owner else []


@pytest.fixture(scope="module", autouse=True)
def imported():
    """Import every command's module once, outside the per-case time limit."""
    import importlib

    for name in ("layer_selection", "moe_routing", "long_exposure", "sublora", "lm_timing"):
        importlib.import_module(f"benchlab.{name}.cli")
    for name in ("zoo.cli", "zoo.pin", "zoo.paper", "core.plan", "core.submit", "gpu_check",
                 "long_exposure.trainer", "long_exposure.accuracy"):
        importlib.import_module(f"benchlab.{name}")


ROWS = expand(CASES)


@pytest.mark.parametrize("argv, option, make", [
    pytest.param(*r[1:], id=r[0], marks=_marks(r[0])) for r in ROWS])
def test_bad_value_is_one_line_error(tmp_path, capsys, monkeypatch, request, argv, option,
                                     make):
    if option == "data.batch_size":  # a dotted override is one word: --data.batch_size=VALUE
        value_make = make
        make = lambda tmp: f"--data.batch_size={value_make(tmp)}"  # noqa: E731
    limit = 3 if request.node.callspec.id in OPEN else LIMIT_S  # known open: fail fast
    check(tmp_path, argv, make, option_names(option), capsys, monkeypatch, limit=limit)
