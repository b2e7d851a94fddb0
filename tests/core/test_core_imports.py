"""Import cycles (core.imports) and the one place records are made, read from the source."""

import ast
import subprocess
import sys
from pathlib import Path

from benchlab.core import imports

LIB = Path(imports.__file__).resolve().parents[1]


def write_package(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "pkg"
    for name, text in files.items():
        path = pkg / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return pkg


def test_finds_a_cycle_hidden_in_a_function_and_ignores_type_checking(tmp_path):
    pkg = write_package(tmp_path, {
        "__init__.py": "",
        "a.py": "from . import b\n",
        "b.py": "def f():\n    from .a import g\n",  # a lazy import still closes a -> b -> a
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import d\n",
        "d.py": "from pkg import c\n",
        "sub/__init__.py": "from .e import x\n",  # a package importing its own submodule
        "sub/e.py": "import os\nx = 1\n",
    })
    edges = imports.graph(pkg)
    assert edges["pkg.b"] == {"pkg.a"} and edges["pkg.c"] == set()
    assert edges["pkg.sub"] == {"pkg.sub.e"}
    assert imports.cycles(edges) == [["pkg.a", "pkg.b"]]


def test_cycles_agree_with_brute_force_reachability(tmp_path):
    """Two modules share a component iff each reaches the other (checked by search)."""
    import random

    rng = random.Random(0)
    for _ in range(50):
        n = rng.randint(2, 9)
        edges = {f"m{i}": {f"m{j}" for j in range(n) if j != i and rng.random() < 0.2}
                 for i in range(n)}

        def reach(v, edges=edges):
            seen, todo = set(), [v]
            while todo:
                for w in edges[todo.pop()]:
                    if w not in seen:
                        seen.add(w)
                        todo.append(w)
            return seen

        r = {v: reach(v) for v in edges}
        expected = {frozenset([v] + [w for w in edges if w in r[v] and v in r[w]])
                    for v in edges}
        expected = sorted(sorted(c) for c in expected if len(c) > 1)
        assert imports.cycles(edges) == expected


def test_benchlab_has_no_import_cycles():
    out = subprocess.run([sys.executable, "-m", "benchlab.core.imports"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout
    assert "0 import cycles" in out.stdout


def test_records_are_made_in_one_module():
    """make_record is called from core/session.py only (every front end goes through Run)."""
    callers = set()
    for path in LIB.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", None)
                if name == "make_record":
                    callers.add(path.relative_to(LIB).as_posix())
    assert callers == {"core/session.py"}
