"""The known holes of issue 36, each a fuzz case of its own: range checks that seeds and
fractions lacked, flags that contradict each other, a resume with nothing to resume, a zoo
manifest with an entry removed, `compare --exact` on True and 1, a missing shared-data folder,
and outputs that exist already (refused, byte-identical)."""

import json
from pathlib import Path

import pytest
from fuzz_inputs import afile, check

from benchlab.cli import main
from benchlab.layer_selection import data as ls_data
from benchlab.zoo import manifest

SHARED = ls_data.shared_dir()
SCORES = SHARED / "scores" / "opt125m_scores.json"
CASES = SHARED / "cases" / "experiment_cases.json"
PREVIOUS = "previous-output.json"  # check() writes it into every case folder before the run


def empty_dir(tmp):
    (tmp / "e").mkdir()
    return tmp / "e"


def existing_cases(tmp):
    (tmp / "g").mkdir()
    afile(tmp / "g", "all_cases.json", b"{}")
    return tmp / "g"


def cases_file(tmp):
    return afile(tmp, "base.json", json.dumps({"cases": [
        {"case_id": 1, "budgets": [1e7, 1e7, 1e7]}]}).encode())


# (id, argv (callables get the case folder), texts of which the error line must hold one)
KNOWN = [
    *[(f"perturbation-factor-{v}", ["layer-selection", "generate-cases", "--base", cases_file,
                                    "--output-dir", "g", "--perturbation_factor", v],
       ["--perturbation_factor"]) for v in ("2", "1", "-0.1", "nan")],
    ("skip-existing-and-overwrite", ["layer-selection", "run", "--scores", SCORES, "--cases", CASES,
                                     "--output-dir", "o", "--skip_existing", "--overwrite"],
     ["--overwrite", "--skip_existing"]),
    *[(f"lr-{v}", ["long-exposure", "finetune", "--out", "ft", "--steps", "1", "--lr", v],
       ["--lr"]) for v in ("nan", "-1", "0", "-inf")],
    ("resume-without-state", ["long-exposure", "finetune", "--out", "ft", "--steps", "1",
                              "--records", "20", "--resume"], ["train_state.pt"]),
    ("resume-empty-out", ["long-exposure", "finetune", "--out", empty_dir, "--steps", "1",
                          "--records", "20", "--resume"], ["train_state.pt"]),
    *[(f"val-fraction-{v}", ["prepare", "nanogpt", "--synthetic", "4", "--val-fraction", v, "ng"],
       ["--val-fraction"]) for v in ("1", "0", "1.0000001", "-0")],
    *[(f"negative-seed-{cmd[1]}", [*cmd, "--seed", "-3"], ["--seed"]) for cmd in (
        ["long-exposure", "records", "--out", "r.jsonl"],
        ["long-exposure", "finetune", "--out", "ft", "--steps", "1"],
        ["prepare", "nanogpt", "--synthetic", "4", "ng"],
        ["zoo", "paper-shapes", "ps"],
        ["layer-selection", "generate-cases", "--output-dir", "g"])],
    # an output that exists is refused unless asked for, and keeps its bytes
    ("existing-scores", ["layer-selection", "extract-scores", "--model", "opt-tiny", "--output",
                         PREVIOUS], [PREVIOUS]),
    ("existing-norms", ["layer-selection", "extract-norms", "--model", "opt-tiny", "--output",
                        PREVIOUS], [PREVIOUS]),
    ("existing-records", ["long-exposure", "records", "--n", "3", "--out", PREVIOUS], [PREVIOUS]),
    ("existing-npy", ["prepare", "npy", lambda t: afile(t, "in.txt", b"some text\n"), PREVIOUS],
     [PREVIOUS]),
    ("existing-jsonl", ["prepare", "jsonl", lambda t: afile(t, "in.jsonl",
                                                            b'{"prompt": "a", "target": "b"}\n'),
                        PREVIOUS], [PREVIOUS]),
    ("existing-cases", ["layer-selection", "generate-cases", "--output-dir", existing_cases],
     ["all_cases.json"]),
]


@pytest.mark.parametrize("argv, needles", [k[1:] for k in KNOWN], ids=[k[0] for k in KNOWN])
def test_known_hole_is_closed(tmp_path, capsys, monkeypatch, argv, needles):
    check(tmp_path, argv, None, needles, capsys, monkeypatch)


def test_missing_shared_data_folder_is_an_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BENCHLAB_LS_DATA", str(tmp_path / "gone"))
    check(tmp_path, ["layer-selection", "generate-cases", "--output-dir", "g"], None,
          ["BENCHLAB_LS_DATA"], capsys, monkeypatch)


@pytest.fixture
def manifest_without(tmp_path, monkeypatch):
    """A copy of MANIFEST.json with one entry removed, read in place of the shipped one."""
    def remove(name: str):
        data = json.loads(manifest.MANIFEST.read_text())
        del data["files"][name]
        copy = tmp_path / "manifest" / "MANIFEST.json"
        copy.parent.mkdir()
        copy.write_text(json.dumps(data))
        monkeypatch.setattr(manifest, "MANIFEST", copy)
        manifest.manifest.cache_clear()
        manifest.path.cache_clear()
        return copy

    yield remove
    manifest.manifest.cache_clear()
    manifest.path.cache_clear()


@pytest.mark.parametrize("name", sorted(json.loads(manifest.MANIFEST.read_text())["files"]))
def test_zoo_verify_fails_on_a_removed_entry(tmp_path, capsys, monkeypatch, manifest_without,
                                             name):
    copy = manifest_without(name)
    line = check(tmp_path, ["zoo", "verify"], None, [str(copy)], capsys, monkeypatch)
    assert name in line


def test_moe_routing_run_refuses_to_train_an_unlisted_pinned_model(tmp_path, capsys, monkeypatch,
                                                                   manifest_without):
    from benchlab.moe_routing import CONFIGS

    model = CONFIGS["tiny"].model
    copy = manifest_without(manifest.file_name(model))
    line = check(tmp_path, ["moe-routing", "run", "--output", "moe", "--prompts-per-category",
                            "1", "--device", "cpu"], None, [str(copy)], capsys, monkeypatch)
    assert model in line


def test_compare_exact_does_not_count_true_equal_to_one(tmp_path, capsys):
    base = json.loads((Path(__file__).parents[2] / "reports/baseline/tiny.json").read_text())
    rec = next(r for r in base["records"] if r["experiment"] == "layer_selection"
               and (r.get("metrics") or {}).get("short") == 1)
    paths = []
    for value in (1, True):
        doc = {"records": [dict(rec, metrics=dict(rec["metrics"], short=value))]}
        paths.append(afile(tmp_path, f"{value!r}.json", json.dumps(doc).encode()))
    assert main(["compare", str(paths[0]), str(paths[0]), "--exact"]) == 0
    capsys.readouterr()
    assert main(["compare", str(paths[0]), str(paths[1]), "--exact"]) != 0
    assert "short" in capsys.readouterr().out


def test_shipped_manifest_verifies(capsys):
    assert main(["zoo", "verify"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(manifest.manifest()["files"])

