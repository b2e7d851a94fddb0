"""The seed repository's flags accepted as typed, one-line errors for the rest, the CLI's run
as Run records (compare, report, resume), and the module graph without the solver/milp cycle."""

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from benchlab.cli import main as top
from benchlab.core.compare import compare
from benchlab.core.results import load_records
from benchlab.layer_selection import data
from benchlab.layer_selection.seed_format import budget_cases

SHARED = data.shared_dir()
needs_shared = pytest.mark.skipif(not (SHARED / "scores").exists(),
                                  reason=f"shared layer-selection data not at {SHARED}")
PACKAGE = Path(data.__file__).parent


def ls(*argv) -> int:
    return top(["layer-selection", *map(str, argv)])


def one_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("benchlab: error: ") and "\n" not in err, err
    return err


def seed_reference(target, n, M):
    """The seed's generate_cases.py loop, written out with numpy's global legacy generator."""
    np.random.seed(42)
    out = []
    for cid in range(1, n + 1):
        total = target * (np.random.uniform(0.15, 0.35) / 0.25)
        if cid <= n * 0.2:
            b = np.random.uniform(0.1 * total / M, 2.0 * total / M, M)
            b = b / b.sum() * total
        elif cid <= n * 0.4:
            b = np.ones(M) * total / M
            b[np.random.randint(0, M)] = total * 0.7
            b = b / b.sum() * total
        elif cid <= n * 0.6:
            r = np.exp(-np.linspace(0, 2, M))
            b = r / r.sum() * total
        elif cid <= n * 0.8:
            r = np.exp(np.linspace(0, 2, M))
            b = r / r.sum() * total
        else:
            b = np.ones(M) * total / M
        out.append(np.round(b, 2).tolist())
    return out


def test_budget_cases_follow_the_seed_loop():
    cases = budget_cases(1e9, num_cases=20, num_verifiers=4)
    assert [c["budgets"] for c in cases] == seed_reference(1e9, 20, 4)
    assert [c["case_id"] for c in cases] == list(range(1, 21))
    assert all(c["num_verifiers"] == 4 and c["total_budget"] == pytest.approx(sum(c["budgets"]))
               for c in cases)


def test_generate_cases_seed_flags_as_typed(tmp_path, monkeypatch):
    scores = tmp_path / "scores"
    scores.mkdir()
    doc = {"model_name": "m", "layers": [{"index": i, "name": f"l{i}", "num_parameters": 1000,
                                          "significance_score": 0.5} for i in range(8)]}
    (scores / "opt125m_scores.json").write_text(json.dumps(doc))
    monkeypatch.chdir(tmp_path)
    assert ls("generate-cases", "--num_cases", 10, "--num_verifiers", 3, "--output_dir",
              "cases", "--scores_dir", scores) == 0
    got = json.loads((tmp_path / "cases" / "all_cases.json").read_text())
    assert got["num_cases"] == 10 and got["num_verifiers"] == 3
    assert [c["budgets"] for c in got["cases"]] == seed_reference(8000 / 4, 10, 3)
    one = json.loads((tmp_path / "cases" / "case_007.json").read_text())
    assert one == got["cases"][6]
    assert data.read_cases(tmp_path / "cases" / "all_cases.json")[0]["case_id"] == 1


def test_unsupported_options_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "s.json").write_text("{}")
    assert ls("generate-cases", "--num_cases", 5, "--base", tmp_path / "b.json") == 2
    assert "--num_cases: makes new budget cases" in one_error(capsys)
    assert ls("generate-cases", "--num_perturbations", 3, "--output_dir", tmp_path / "g") == 2
    assert "--num_perturbations: perturbs the cases of --base FILE" in one_error(capsys)
    assert ls("run", "--scores", tmp_path / "s.json", "--cases_dri", "cases") == 2
    assert "did you mean --cases_dir?" in one_error(capsys)
    assert ls("run", "--scores", tmp_path / "s.json", "--cases_dir", tmp_path) == 2
    assert "--cases_dir: no all_cases.json here" in one_error(capsys)
    assert ls("run", "--solver", "greedy") == 2
    assert "invalid choice: 'greedy'" in one_error(capsys)
    assert ls("plot", "--results", tmp_path / "x.json", "--output", tmp_path / "x.pdf") == 2
    assert "--output: the suite draws PNG figures" in one_error(capsys)
    assert ls("plot", "--results", tmp_path / "x.json") == 2
    assert "--output: required with --results" in one_error(capsys)
    assert ls("plot", "--results", tmp_path, "--output", tmp_path / "c.png") == 2
    assert "no *_all_results.json files" in one_error(capsys)


@needs_shared
def test_run_as_the_seed_types_it_leaves_a_store_to_compare(tmp_path, capsys):
    cases = tmp_path / "cases"
    cases.mkdir()
    doc = json.loads((SHARED / "cases" / "experiment_cases.json").read_text())
    (cases / "all_cases.json").write_text(json.dumps({"cases": doc["cases"][:4]}))
    argv = ["run", "--scores", SHARED / "scores" / "opt125m_scores.json", "--norms",
            SHARED / "norms" / "opt_125m_norms.json", "--cases_dir", cases,
            "--model_name", "opt_125m", "--plot"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert ls(*argv, "--output_dir", a) == 0 and ls(*argv, "--output_dir", b) == 0
    recs = load_records(a / "store.jsonl")
    assert len(recs) == 4 and {r["kind"] for r in recs} == {"files"}
    assert all(r["experiment"] == "layer_selection" and r["config"]["case"]["id"] for r in recs)
    rows, compared = compare(recs, load_records(b / "store.jsonl"))
    assert rows == [] and compared == 4 * 5 * 5  # cases x methods x metrics
    # the seed's results file is the records' metrics in the seed's layout
    res = json.loads((a / "opt_125m_all_results.json").read_text())
    first = next(r for r in recs if r["config"]["case"]["case_id"] == res["results"][0]["case_id"])
    assert res["results"][0]["results"]["norm_2"]["alphaprun_ratio"] == \
        first["metrics"]["ratio_norm_2"]
    # resume: a rerun measures nothing, an interrupted run measures only what is missing
    capsys.readouterr()
    assert ls(*argv, "--output_dir", a) == 0
    assert "(0 cases measured, 4 read from store.jsonl)" in capsys.readouterr().out
    lines = (b / "store.jsonl").read_text().splitlines()
    (b / "store.jsonl").write_text("\n".join(lines[:3]) + "\n")  # killed after 3 cases, so
    (b / "opt_125m_all_results.json").unlink()  # before the results file was written
    assert ls(*argv, "--output_dir", b) == 0
    assert "(1 cases measured, 3 read from store.jsonl)" in capsys.readouterr().out
    # benchlab report draws the seed's figures from the records
    assert top(["report", str(a / "store.jsonl"), "--outdir", str(tmp_path / "rep")]) == 0
    rep = tmp_path / "rep" / "layer_selection"
    assert (rep / "opt_125m_comparison.txt").read_text() == (
        a / "opt_125m_comparison.txt").read_text()
    # plot --results FILE --output PNG (the seed's plot_results.py)
    assert ls("plot", "--results", a / "opt_125m_all_results.json", "--output",
              tmp_path / "p" / "opt.png") == 0
    assert (tmp_path / "p" / "opt.png").is_file()
    assert (tmp_path / "p" / "opt.txt").read_text() == (a / "opt_125m_comparison.txt").read_text()
    assert ls("plot", "--results", a, "--output", tmp_path / "p" / "all.png") == 0
    assert "opt_125m" in (tmp_path / "p" / "all.txt").read_text()


def _imports(path: Path) -> set[str]:
    """The package's modules that `path` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found |= {a.name for a in node.names if (PACKAGE / f"{a.name}.py").exists()}
    return found


def test_no_import_cycle_between_the_package_modules():
    graph = {p.stem: _imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert "solver" not in graph["milp"] and "selection" in graph["milp"]

    def visit(node, path):
        for nxt in graph.get(node, ()):
            assert nxt not in path, f"import cycle: {' -> '.join([*path, nxt])}"
            visit(nxt, [*path, nxt])

    for module in graph:
        visit(module, [module])
