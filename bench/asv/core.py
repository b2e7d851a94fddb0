"""Core harness costs: appending to and reading the result store."""

import tempfile
from pathlib import Path

from benchlab.core import ResultStore


class StoreSuite:
    params = [100, 1000]
    param_names = ["records"]

    def setup(self, n):
        self.dir = tempfile.TemporaryDirectory()
        self.store = ResultStore(Path(self.dir.name) / "store.jsonl")
        self.records = [{"experiment": "asv", "case": f"c{i}", "config_hash": "h",
                         "code_version": "v", "metrics": {"x": i}} for i in range(n)]
        for rec in self.records:
            self.store.append(rec)

    def teardown(self, n):
        self.dir.cleanup()

    def time_read(self, n):
        self.store.read()

    def track_records_read_back(self, n):
        return len(self.store.read())
