"""The claims check: every committed table that states a verdict ("better", "met", "slower", ...)
carries the interval, the family-adjusted p and the number of units it rests on
(core.stats.VERDICT_COLUMNS), and its verdict word follows from them (core.stats.check_verdict).
A table whose verdict contradicts its own interval fails here, whichever experiment wrote it."""

import csv
from pathlib import Path

import pytest

from benchlab.core import stats

REPORTS = Path(__file__).resolve().parents[1] / "reports"
VERDICT_HEADERS = {"verdict", "met"}


def markdown_tables(path: Path):
    """The pipe tables of a markdown file, each as a list of row dicts."""
    rows, header = [], None
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if "|" in line else None
        if cells is None:
            if header and rows:
                yield rows
            rows, header = [], None
        elif header is None:
            header = cells
        elif not set("".join(cells)) <= set("-: "):
            rows.append(dict(zip(header, cells, strict=False)))


def claims_tables():
    for path in sorted(REPORTS.rglob("*.csv")):
        if "asv" in path.parts:
            continue
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        if rows and VERDICT_HEADERS & set(rows[0]):
            yield path, rows
    for path in sorted(REPORTS.rglob("*.md")):
        for rows in markdown_tables(path):
            if VERDICT_HEADERS & set(rows[0]):
                yield path, rows


TABLES = list(claims_tables())


def test_the_reports_state_verdicts_at_all():
    assert len(TABLES) >= 4, [str(p) for p, _ in TABLES]


@pytest.mark.parametrize("path, rows", TABLES,
                         ids=[f"{p.relative_to(REPORTS)}#{i}" for i, (p, _) in enumerate(TABLES)])
def test_every_verdict_follows_from_its_own_interval(path, rows):
    missing = [c for c in stats.VERDICT_COLUMNS if c not in rows[0]]
    assert not missing, f"{path.relative_to(REPORTS)}: a verdict table without {missing}"
    wrong = {i: why for i, r in enumerate(rows) if (why := stats.check_verdict(r))}
    assert not wrong, f"{path.relative_to(REPORTS)}: {wrong}"
