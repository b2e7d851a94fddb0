"""The model-step setup: cases per scale, exposer masks as a fixed source, trainers.

    pytest tests/long_exposure/test_le_model_step.py -q
"""

import pytest
import torch

from benchlab import zoo
from benchlab.long_exposure import CONFIGS, model_step_cases, setups
from benchlab.long_exposure import patch as P
from benchlab.long_exposure.documents import Docs


def test_model_step_cases_per_scale():
    """tiny: the trained opt-tiny's exposer masks at L = 1024 and 2048 (no random-init model)."""
    tiny = model_step_cases(CONFIGS["tiny"])
    assert [(c.model, c.init, c.masks, c.seq_len) for c in tiny] == [
        ("opt-tiny", "trained", "exposed", 1024), ("opt-tiny", "trained", "exposed", 2048)]
    assert CONFIGS["tiny"].step_rounds >= 10 and CONFIGS["small"].step_rounds >= 10
    cases = model_step_cases(CONFIGS["small"])
    assert [c.masks for c in cases] == ["exposed", "synthetic"]
    assert all(c.model == "opt-125m-shape" and c.seq_len == 1024 for c in cases)
    assert cases[0].init == "trained" and "trained" in cases[0].id  # said in the record id
    assert cases[1].density == 0.25 and "synthetic0.25" in cases[1].id


def test_exposed_source_masks_and_fixed_patch_equals_masked_run():
    """Exposer masks have the operator shapes; a Fixed source of all-kept masks equals dense."""
    torch.set_num_threads(1)
    m = zoo.build("opt-tiny").eval()
    ids = torch.randint(2, 4096, (1, 64), generator=torch.Generator().manual_seed(0))
    src = setups.exposed_source(m, ids, mass=0.9, mlp_rel=0.05)
    h = torch.zeros(1, 64, 128)
    docs = Docs(ids, 0)
    assert src.attn(0, h, docs).shape == (1, 4, 4, 4) and src.attn(0, h, docs).dtype == torch.bool
    assert src.mlp(0, h, docs).shape == (1, 512 // setups.MLP_BLOCK)
    assert src.attn(0, h, docs).diagonal(dim1=-2, dim2=-1).all()  # own block has mass
    with torch.no_grad():
        dense = m(ids).logits
        keep = P.KeepAll(4, 512, setups.MLP_BLOCK)
        n = len(src.attn_masks)
        P.patch(m, P.Fixed([keep.attn(0, h, docs)] * n, [keep.mlp(0, h, docs)] * n))
        assert torch.allclose(m(ids).logits, dense, atol=1e-4)


def test_dense_above_runs_parts_dense_only_above_the_break_even():
    """patch(dense_above=...): a part whose mask keeps more than the threshold runs the dense
    kernel (equal to the unpatched model); below it the block-sparse operator runs (a sparse
    mask then changes the output)."""
    torch.set_num_threads(1)
    m = zoo.build("opt-tiny").eval()
    ids = torch.randint(2, 4096, (1, 64), generator=torch.Generator().manual_seed(0))
    n = m.config.num_hidden_layers
    with torch.no_grad():
        dense = m(ids).logits
        half = P.RandomMasks(4, 512, setups.MLP_BLOCK, 0.5, 0.5, seed=0)
        stats = P.patch(m, half, dense_above={"attn": 0.4, "mlp": 0.4})
        assert torch.allclose(m(ids).logits, dense, atol=1e-4)
        assert stats.dense_runs == 2 * n and 0.4 < stats.density("mlp") <= 0.6
        P.unpatch(m)
        stats = P.patch(m, half, dense_above={"attn": 0.9, "mlp": 0.9})
        assert not torch.allclose(m(ids).logits, dense, atol=1e-3)
        assert stats.dense_runs == 0


def test_break_even_crossing_interpolates_and_feeds_the_dispatcher():
    from benchlab.long_exposure import breakeven as be

    assert be.crossing({0.1: 3.0, 0.3: 1.5, 0.5: 0.5}) == pytest.approx(0.3 + 0.5 * 0.2)
    assert be.crossing({0.1: 0.9, 0.5: 0.5}) == 0.0 and be.crossing({0.1: 3, 0.9: 1.1}) == 1.0
    a, curve = be.attention(1, 2, 64, 8, grid=(0.3, 1.0), rounds=1)
    assert set(curve) == {0.3, 1.0} and 0.0 <= a <= 1.0
    # a callable break-even (of the length) is read per call
    m = zoo.build("opt-tiny").eval()
    ids = torch.randint(2, 4096, (1, 64), generator=torch.Generator().manual_seed(0))
    half = P.RandomMasks(4, 512, setups.MLP_BLOCK, 0.5, 0.5, seed=0)
    seen = []
    stats = P.patch(m, half, dense_above={"attn": lambda n: seen.append(n) or 0.0, "mlp": 1.0})
    with torch.no_grad():
        m(ids)
    assert seen == [64] * m.config.num_hidden_layers and stats.dense_runs == len(seen)


def _step_result(rounds=10, **extra):
    """A model-step result whose round times make LE clearly faster than sdpa_doc_mask, clearly
    slower than per_document and level with eager."""
    import numpy as np

    rng = np.random.default_rng(0)
    le = 1.0 + 0.01 * rng.standard_normal(rounds)
    times = {"le": le, "le_dispatch": le * 1.001,
             "sdpa": le * 2.0 * (1 + 0.01 * rng.standard_normal(rounds)),
             "sdpa_docs": le * 0.5 * (1 + 0.01 * rng.standard_normal(rounds)),
             "sdpa_causal": le * (1 + 0.3 * rng.standard_normal(rounds)),
             "eager": le * (1 + 0.3 * rng.standard_normal(rounds))}
    r = {"model": "opt-tiny", "init": "trained", "seq_len": 1024, "masks": "exposed",
         "threads": 1, "rounds": rounds, "keeps_everything": False, "density_attn": 0.153,
         "density_doc": 0.165, "density_mlp": 1.0, "break_even_attn": 0.0,
         "break_even_mlp": 0.0, "memory_ratio": 0.94, "memory_ratio_sdpa_docs": 1.0,
         "memory_ratio_eager": 0.58, "times": {k: list(v) for k, v in times.items()}}
    return {**r, **extra}


def test_model_step_md_reads_each_verdict_from_its_rounds_and_names_the_device():
    from benchlab.core.stats import check_verdict
    from benchlab.long_exposure.model_step import model_step_md, verdicts

    r = _step_result()
    table = verdicts(r)
    assert list(table["baseline"][:2]) == ["per_document", "per_document"]  # strongest first
    got = {(row.contender, row.baseline): row.verdict for row in table.itertuples()}
    assert got[("le", "per_document")] == "slower" and got[("le", "sdpa_doc_mask")] == "faster"
    assert all(check_verdict(row) is None for row in table.to_dict("records"))
    md = model_step_md(r)
    assert "shared 2-core machine" in md and "| le          | per_document" in md
    few = verdicts(_step_result(rounds=4))
    assert set(few["verdict"]) == {"not shown"}  # under 5 rounds nothing is claimed
    md = model_step_md(_step_result(device="cuda", machine={"gpu": "NVIDIA H200"}))
    assert "Measured on cuda (NVIDIA H200)." in md and "shared 2-core" not in md


def test_flex_trainer_only_on_cuda():
    """FlexAttention has no backward on CPU: the CPU model step times no le_flex trainer."""
    cfg = CONFIGS["tiny"]
    ts = setups.model_step_trainers(cfg, "opt-tiny", 64, "synthetic", 0.5, "random")
    assert set(ts) == {"le", "le_dispatch", "sdpa", "sdpa_docs", "sdpa_causal", "eager"}


def test_flex_speedups_are_paired_ratios_of_the_flex_rounds():
    import numpy as np

    from benchlab.long_exposure.measure import flex_speedups

    times = {"sdpa": [1.0, 2.0, 3.0], "sdpa_docs": [2.0, 2.0, 2.0], "eager": [3.0, 1.0, 2.0],
             "sdpa_causal": [1.0, 1.0, 1.0], "le": [9.0, 9.0, 9.0]}
    assert flex_speedups(times) == {}  # CPU: no FlexAttention trainer
    times["le_flex"] = [0.5, 4.0, 1.0]
    out = flex_speedups(times)
    assert set(out) == {"flex_speedup_sdpa", "flex_speedup_sdpa_docs", "flex_speedup_eager",
                        "flex_speedup_sdpa_causal", "t_le_flex"}
    for k in ("sdpa", "sdpa_docs", "eager", "sdpa_causal"):
        assert out[f"flex_speedup_{k}"] == np.median(np.divide(times[k], times["le_flex"]))
    assert out["t_le_flex"] == 1.0


def test_model_step_cli_records_through_run_and_two_stores_compare(tmp_path, monkeypatch, capsys):
    """`model-step` leaves store.jsonl (the folder of --out; without it .benchlab/long_exposure/
    model_step/) with the record of the config's model_step case, made through core.session.Run
    with the bench's metrics; two such stores compare value by value."""
    import json

    from benchlab.core.compare import compare
    from benchlab.core.store import ResultStore
    from benchlab.long_exposure.cli import main as le_main

    monkeypatch.chdir(tmp_path)
    args = ["model-step", "--scale", "tiny", "--model", "opt-tiny", "--seq-len", "64",
            "--rounds", "1", "--masks", "synthetic", "--density", "0.5"]
    assert le_main(args) == 0
    assert le_main([*args, "--out", str(tmp_path / "b" / "step.json")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert json.loads(out[-1])["masks"] == "synthetic"
    assert (tmp_path / "b" / "step.md").exists()
    a = ResultStore(tmp_path / ".benchlab/long_exposure/model_step/store.jsonl").read()
    b = ResultStore(tmp_path / "b" / "store.jsonl").read()
    (rec,) = a
    assert rec["case"] == "model_step[opttiny-trained-synthetic0.5-L64]"
    assert rec["kind"] == "model_step" and rec["scale"] == "tiny" and rec["code_version"]
    assert rec["config"]["case"]["density"] == 0.5 and rec["run"]["threads"] == 1
    assert {"memory_ratio", "density_attn", "layer_density_mlp", "t_le",
            "t_rounds_sdpa_docs", "t_rounds_sdpa_causal"} <= set(rec["metrics"])
    rows, compared = compare(a, b)
    assert compared > 0 and not [r for r in rows if r.status in ("moved", "config")]
