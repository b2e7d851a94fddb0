"""The measuring functions every front end shares (sublora.measure, through core.session.Run)."""

from benchlab.core.session import Run


def test_a_trained_run_records_its_gain_over_the_w0_case_of_its_d_and_seed():
    """The gain a trained sweep point records is the w = 0 sweep point's own bound (measured as
    its own case) minus the trained bound, and `gain_met` says whether it meets the config's goal;
    the w = 0 point records no gain."""
    from benchlab.sublora import REFERENCES

    run = Run("sublora", "tiny", threads=1)
    cases = run.cases("sweep")
    w0 = next(c for c in cases if c.mode == "w0")
    trained = next(c for c in cases if c.mode not in REFERENCES and c.seed == w0.seed)
    assert (w0.d, w0.seed) == (trained.d, trained.seed)
    base = run.measure("sweep", w0)["metrics"]
    got = run.measure("sweep", trained)["metrics"]
    assert "gain_over_w0" not in base
    assert got["gain_over_w0"] == base["bound_value"] - got["bound_value"]
    assert got["gain_met"] == (got["gain_over_w0"] >= run.config.min_gain_over_w0 > 0)
