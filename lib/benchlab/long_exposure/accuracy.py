"""Table IV accuracy through lm-evaluation-harness's Python API (lm_eval.simple_evaluate).

    from benchlab.long_exposure import accuracy
    accuracy.evaluate("runs/lora-le/checkpoint", ["zoo_cloze"], limit=100)
    accuracy.evaluate("runs/opt-1.3b/checkpoint", accuracy.PAPER_TASKS, device="cuda:0")

The paper's five tasks need the hub or a local HF datasets cache; `zoo_cloze` is an offline
multiple-choice cloze task from the zoo's validation documents (the true next words among
seeded spans of other documents). lm_eval is imported lazily (`pip install 'lm-eval>=0.4.8'`).
"""

import json
from pathlib import Path

import numpy as np

from benchlab.core.errors import BenchlabError, first_line

PAPER_TASKS = ("piqa", "winogrande", "rte", "copa", "hellaswag")
ZOO_TASK = "zoo_cloze"
_YAML = """\
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
  cache_dir: {cache}
output_type: multiple_choice
test_split: test
doc_to_text: context
doc_to_target: label
doc_to_choice: choices
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def cloze_docs(n: int = 200, *, context_words: int = 24, choice_words: int = 4,
               n_choices: int = 4, seed: int = 0) -> list[dict]:
    """`n` cloze items from zoo.corpus_documents("val"): {"context", "choices", "label"}; the
    true continuation sits at a seeded position among distractor spans of other documents."""
    from benchlab import zoo

    for name, value, lo in (("n", n, 1), ("context_words", context_words, 1),
                            ("choice_words", choice_words, 1), ("n_choices", n_choices, 2)):
        if not isinstance(value, int) or value < lo:
            raise BenchlabError(f"{ZOO_TASK}: {name}: {value!r} is not an integer >= {lo}")
    words = [d.split() for d in zoo.corpus_documents("val")]
    need = context_words + choice_words
    usable = [i for i, w in enumerate(words) if len(w) >= need]
    if len(usable) < n_choices:
        raise BenchlabError(f"{ZOO_TASK}: context_words: {context_words} + choice_words leaves "
                            f"{len(usable)} documents; need {n_choices}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(usable)
    docs = []
    for k in range(n):
        i = int(order[k % len(order)])
        start = int(rng.integers(0, len(words[i]) - need + 1))
        context = " ".join(words[i][start:start + context_words])
        gold = " ".join(words[i][start + context_words:start + need])
        choices = [gold]
        while len(choices) < n_choices:
            j = int(rng.choice(usable))
            s = int(rng.integers(0, len(words[j]) - choice_words + 1))
            span = " ".join(words[j][s:s + choice_words])
            if j != i and span not in choices:
                choices.append(span)
        label = int(rng.integers(0, n_choices))
        choices[0], choices[label] = choices[label], choices[0]
        docs.append({"context": context, "choices": choices, "label": label})
    return docs


def write_cloze_task(directory, n: int = 200, seed: int = 0) -> Path:
    """Write zoo_cloze.jsonl and zoo_cloze.yaml into `directory` (an lm_eval include_path)."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / f"{ZOO_TASK}.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in cloze_docs(n, seed=seed)))
    (directory / f"{ZOO_TASK}.yaml").write_text(_YAML.format(
        task=ZOO_TASK, data=json.dumps(str(data)), cache=json.dumps(str(directory / "cache"))))
    return directory


def _lm_eval():
    try:
        import lm_eval
    except ImportError:
        raise BenchlabError("lm_eval: not installed; pip install 'lm-eval>=0.4.8' (or "
                            "benchlab[test])") from None
    return lm_eval


def provenance(checkpoint_dir) -> dict:
    """The checkpoint's benchlab_finetune.json ({} for a plain save_pretrained directory); one
    BenchlabError line for a directory that is not a checkpoint lm_eval's hf model loads."""
    from benchlab.core.errors import read_json

    ckpt = Path(checkpoint_dir)
    path = ckpt / "benchlab_finetune.json"
    meta = read_json(path) if path.is_file() else {}
    if meta.get("method") in ("adapter", "prefix"):
        raise BenchlabError(f"{path}: method: {meta['method']} checkpoints keep modules "
                            "(bottleneck adapters, a peft prefix) that lm_eval's hf model cannot "
                            "load; evaluate full, lora or bitfit")
    if not (ckpt / "config.json").is_file():
        raise BenchlabError(f"{ckpt}: --checkpoint: no config.json (not a saved checkpoint)")
    return meta


def evaluate(checkpoint_dir, tasks, *, limit=None, batch_size: int = 8, device: str = "cpu",
             task_dir=None, n_docs: int = 200, seed: int = 0) -> dict:
    """Accuracy of a saved checkpoint on `tasks` through lm_eval.simple_evaluate (hf model);
    per task also per-document "predictions" (argmax choice), "targets" and "correct" (0 or 1).
    `zoo_cloze` (n_docs items) is written into `task_dir` (default: a temporary dir)."""
    import tempfile

    meta = provenance(checkpoint_dir)
    tasks = list(tasks)
    if not tasks:
        raise BenchlabError("--tasks: no task given")
    lm_eval = _lm_eval()
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory() as tmp:
        include = write_cloze_task(task_dir or tmp, n_docs, seed) if ZOO_TASK in tasks else None
        # lm_eval's own tasks are indexed only when asked for (indexing them takes ~5-10 s)
        manager = TaskManager(include_path=str(include) if include else None,
                              include_defaults=any(t != ZOO_TASK for t in tasks))
        unknown = [t for t in tasks if t not in manager.all_tasks]
        if unknown:
            raise BenchlabError(f"--tasks: unknown task {unknown[0]!r} (zoo task: {ZOO_TASK}; "
                                f"paper: {','.join(PAPER_TASKS)})")
        args = {"pretrained": str(Path(checkpoint_dir).resolve()), "dtype": "float32"}
        try:
            out = lm_eval.simple_evaluate(
                model="hf", model_args=args, tasks=tasks, batch_size=batch_size, device=device,
                limit=limit, task_manager=manager, log_samples=True, bootstrap_iters=1000)
        except (ConnectionError, OSError, ValueError) as e:
            raise BenchlabError(f"{','.join(tasks)}: --tasks: lm_eval could not run "
                                f"({first_line(e)[:200]}); the paper tasks need the hub or a "
                                "local HF datasets cache") from None
    results = {}
    for name in tasks:
        r = out["results"][name]
        samples = sorted(out["samples"][name], key=lambda s: s["doc_id"])
        preds = [int(np.argmax([float(x[0]) for x in s["filtered_resps"]])) for s in samples]
        results[name] = {
            "acc": r["acc,none"], "acc_stderr": r["acc_stderr,none"],
            "acc_norm": r.get("acc_norm,none"), "acc_norm_stderr": r.get("acc_norm_stderr,none"),
            "n": len(samples), "predictions": preds,
            "targets": [int(s["target"]) for s in samples],
            "correct": [int(s["acc"]) for s in samples]}
    return {"tasks": results, "checkpoint": str(checkpoint_dir), "provenance": meta,
            "lm_eval_version": lm_eval.__version__, "limit": limit}


# -- Table IV: base, dense and LE checkpoints side by side (`benchlab long-exposure accuracy`) --
DENSITIES = ("density_attn", "density_doc", "density_mlp", "keeps_everything", "density_steps",
             "layer_density_attn", "layer_density_doc", "layer_density_mlp")


def checkpoint_sha256(directory) -> str:
    """sha256 of a checkpoint's weights: of its one *.safetensors file, or of the names and
    sha256s of its shards in name order."""
    import hashlib

    from benchlab.core.provenance import sha256_file

    files = sorted(Path(directory).glob("*.safetensors"))
    if not files:
        raise BenchlabError(f"{directory}: checkpoint: no *.safetensors weights")
    if len(files) == 1:
        return sha256_file(files[0])
    return hashlib.sha256("".join(f.name + sha256_file(f) for f in files).encode()).hexdigest()


def save_base(model: str, directory) -> Path:
    """The base model as a checkpoint lm_eval loads: a local directory as it is, a zoo name's
    weights and tokenizer saved once (atomically) into `directory`."""
    import shutil

    from . import finetune, setups

    if Path(model).is_dir():
        return Path(model)
    directory = Path(directory)
    if (directory / "config.json").is_file():
        return directory
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    setups.base_model(model).save_pretrained(tmp, safe_serialization=True)
    finetune.hf_tokenizer(model).save_pretrained(tmp)
    tmp.replace(directory)
    return directory


def evaluate_once(checkpoint, path, tasks, **kwargs) -> dict:
    """evaluate(checkpoint, tasks, **kwargs) kept as JSON at `path`: an earlier result is reused
    when its settings (the keyword arguments and the checkpoint's weights sha256) are these."""
    from benchlab.core.errors import read_json

    path = Path(path)
    settings = {"tasks": list(tasks), **kwargs, "sha256": checkpoint_sha256(checkpoint)}
    if path.is_file():
        old = read_json(path)
        if old.get("settings") == settings:
            return old
    from benchlab.core.store import atomic_path

    result = {**evaluate(checkpoint, tasks, **kwargs), "settings": settings}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    return result


def mcnemar(a, b) -> dict:
    """McNemar's exact test of paired per-item correctness (0/1, the same items in order): the
    counts both / only a / only b / neither got right, and the two-sided exact p."""
    from statsmodels.stats.contingency_tables import mcnemar as exact_test

    if len(a) != len(b):
        raise BenchlabError(f"mcnemar: {len(a)} items against {len(b)}; need the same items")
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    cells = {"both": int(np.sum(a & b)), "a_only": int(np.sum(a & ~b)),
             "b_only": int(np.sum(~a & b)), "neither": int(np.sum(~a & ~b))}
    table = [[cells["both"], cells["a_only"]], [cells["b_only"], cells["neither"]]]
    p = min(1.0, float(exact_test(table, exact=True).pvalue))
    return {"n": int(len(a)), **cells, "p": p}


PAIRS = (("dense", "base"), ("le", "dense"))  # (a, b): does a's accuracy differ from b's?


def table(evals: dict, run: dict) -> dict:
    """The Table IV result from {mode: evaluate_once result} and the run's settings: per task
    and model every number, the checkpoints' provenance and McNemar tests of PAIRS."""
    from benchlab.core import machine
    from benchlab.core.provenance import git_commit

    models = {}
    for mode, ev in evals.items():
        meta = ev["provenance"]
        models[mode] = {"checkpoint": ev["checkpoint"], "sha256": ev["settings"]["sha256"],
                        "steps": meta.get("steps", 0), "provenance": meta,
                        "densities": {k: meta[k] for k in DENSITIES if k in meta},
                        "tasks": {name: {**r, "correct": [int(c) for c in r["correct"]]}
                                  for name, r in ev["tasks"].items()}}
    tests = {name: {f"{a}_vs_{b}": mcnemar(models[a]["tasks"][name]["correct"],
                                           models[b]["tasks"][name]["correct"])
                    for a, b in PAIRS}
             for name in run["tasks"]}
    first = next(iter(evals.values()))
    return {**run, "lm_eval_version": first["lm_eval_version"], "machine": machine.facts(),
            "commit": git_commit(), "models": models, "tests": tests}


def table_md(r: dict) -> str:
    """accuracy.md: one row per task and model, the LE densities, the paired tests."""
    le = r["models"]["le"]["densities"]
    dens = (f"{le['density_attn']:.3f} / {le['density_doc']:.3f} / {le['density_mlp']:.3f}"
            + (" (keeps everything)" if le.get("keeps_everything") else "")
            if "density_attn" in le else "not recorded")
    m = r["machine"]
    where = r["device"] if r["device"] == "cpu" else f"{r['device']} ({m.get('gpu')})"
    n_items = {name: r["models"]["base"]["tasks"][name]["n"] for name in r["tasks"]}
    lines = [
        f"Table IV: {r['method']} fine-tuning of {r['model']} ({r['steps']} steps, L="
        f"{r['seq_len']}, global batch {r['batch_size']}, lr {r['lr']}, seed {r['seed']}) in "
        "dense mode and in Long Exposure mode on the same packed rows, evaluated with "
        f"lm-evaluation-harness {r['lm_eval_version']} (Python API, per-sample logging) on "
        + ", ".join(f"{name} ({n} items)" for name, n in n_items.items())
        + f"; {where}, {m.get('cpu')}. acc +- stderr as lm_eval reports them. LE densities: "
        "attention kept / causal blocks, documents alone / causal blocks, MLP kept neuron "
        "blocks, over the LE run's steps.",
        "",
        "| task | model | mode | steps | acc +- stderr | LE densities (attention / documents / "
        "MLP) |",
        "|---|---|---|---|---|---|"]
    for name in r["tasks"]:
        for mode, x in r["models"].items():
            t = x["tasks"][name]
            label = r["model"] if mode == "base" else f"{r['model']} + {r['method']}"
            lines.append(f"| {name} | {label} | {mode} | {x['steps']} | {t['acc']:.3f} +- "
                         f"{t['acc_stderr']:.3f} | {dens if mode == 'le' else '-'} |")
    lines += ["", "Paired tests on per-item correctness (McNemar's exact test, two-sided):"]
    for name, tests in r["tests"].items():
        for pair, t in tests.items():
            a, b = pair.split("_vs_")
            higher = "higher" if t["a_only"] > t["b_only"] else "lower"
            verdict = ("no accuracy change shown at this scale" if t["p"] >= 0.05
                       else f"an accuracy change shown ({a} {higher})")
            lines.append(f"- {name}, {a} vs {b}: right only in {a} {t['a_only']}, only in {b} "
                         f"{t['b_only']} (of {t['n']} items), p = {t['p']:.3g}: {verdict}.")
    lines += ["", "Weights sha256: " + ", ".join(
        f"{mode} {x['sha256'][:16]}" for mode, x in r["models"].items())
        + f"; commit {r['commit'] or 'unknown'}.", ""]
    return "\n".join(lines)


def write(result: dict, outdir) -> list[Path]:
    """accuracy.json and accuracy.md under `outdir`."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    js, md = outdir / "accuracy.json", outdir / "accuracy.md"
    js.write_text(json.dumps(result, indent=1) + "\n")
    md.write_text(table_md(result))
    return [js, md]
