"""Table IV accuracy through lm-evaluation-harness's Python API (lm_eval.simple_evaluate).

    from benchlab.long_exposure import accuracy
    accuracy.evaluate("runs/lora-le/checkpoint", ["zoo_cloze"], limit=100)
    accuracy.evaluate("runs/opt-1.3b/checkpoint", accuracy.PAPER_TASKS, device="cuda:0")

The paper's five tasks (piqa, winogrande, rte, copa, hellaswag) need the hub or a local HF
datasets cache. `zoo_cloze` needs neither: a multiple-choice cloze task built from the zoo's
validation documents (continue a passage with its true next words, or with words drawn from other
documents, seeded), written as local JSONL + task YAML and registered with lm_eval's TaskManager.
lm_eval is imported lazily: benchlab imports without it (`pip install 'lm-eval>=0.4.8'`).
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
    """Accuracy of a saved checkpoint on `tasks` through lm_eval.simple_evaluate (hf model).

    Returns {"tasks": {name: {"acc", "acc_stderr", "acc_norm", "acc_norm_stderr", "n",
    "predictions" (argmax choice per document, in document order), "targets"}}, "checkpoint",
    "provenance", "lm_eval_version", "limit"}. `zoo_cloze` (n_docs items, seeded) is written into
    `task_dir` (default: a temporary directory).
    """
    import tempfile

    meta = provenance(checkpoint_dir)
    tasks = list(tasks)
    if not tasks:
        raise BenchlabError("--tasks: no task given")
    lm_eval = _lm_eval()
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory() as tmp:
        include = write_cloze_task(task_dir or tmp, n_docs, seed) if ZOO_TASK in tasks else None
        manager = TaskManager(include_path=str(include) if include else None)
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
            "targets": [int(s["target"]) for s in samples]}
    return {"tasks": results, "checkpoint": str(checkpoint_dir), "provenance": meta,
            "lm_eval_version": lm_eval.__version__, "limit": limit}
