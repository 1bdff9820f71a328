"""SQL lives only in the store package: every other module reads and writes a run through
the named methods of ``alignbf.store`` (the store, its reader and its row types).

Outside ``src/alignbf/store/`` no module may import ``sqlite3``, reach a store's
connection (``.conn``, ``.transaction()``, ``._query()``), call ``execute``-like methods or
pandas' ``read_sql*``, or hold a string that starts like an SQL statement.
"""

from __future__ import annotations

import ast
import re

from tests.conftest import ROOT

PACKAGE = ROOT / "src" / "alignbf"
STORE = PACKAGE / "store"
FORBIDDEN_ATTRIBUTES = frozenset(
    {
        "conn",
        "execute",
        "executemany",
        "executescript",
        "read_sql",
        "read_sql_query",
        "read_sql_table",
        "transaction",
        "_query",
    }
)
SQL_TEXT = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA|ATTACH|DETACH|BEGIN|COMMIT|"
    r"WITH)\s"
)
"""An SQL statement as this code base writes one: the keyword in capitals, then a space."""


def violations(source: str, name: str) -> list[str]:
    """Every use of SQL or of a store's connection in one module's source."""
    found = []
    for node in ast.walk(ast.parse(source, name)):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [f"{where}: import {a.name}" for a in node.names if _sqlite(a.name)]
        elif isinstance(node, ast.ImportFrom) and _sqlite(node.module or ""):
            found.append(f"{where}: from {node.module} import")
        elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
            found.append(f"{where}: .{node.attr}")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and SQL_TEXT.match(node.value)
        ):
            found.append(f"{where}: SQL text {node.value[:40]!r}")
    return found


def _sqlite(module: str) -> bool:
    return module == "sqlite3" or module.startswith("sqlite3.")


def test_no_sql_outside_the_store_package() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if STORE in path.parents:
            continue
        found += violations(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not found, "SQL outside alignbf.store:\n" + "\n".join(found)


def test_the_check_finds_each_kind_of_use() -> None:
    source = "\n".join(
        [
            "import sqlite3",
            "from sqlite3 import connect",
            "rows = store.conn.execute('SELECT 1').fetchall()",
            "frame = pd.read_sql_query(text, conn)",
            "with store.transaction() as c:",
            "    c.executemany(text, rows)",
            "store._query(text)",
            "QUERY = 'DELETE FROM messages'",
        ]
    )
    found = violations(source, "m.py")
    for needle in ("import sqlite3", "from sqlite3", ".conn", ".execute", "SQL text 'SELECT 1'",
                   ".read_sql_query", ".transaction", ".executemany", "._query",
                   "SQL text 'DELETE FROM"):  # fmt: skip
        assert any(needle in line for line in found), (needle, found)


def test_prose_and_other_calls_pass() -> None:
    source = '"""Select the runs to merge."""\nx = "Create the job"\npool.submit(f)\n'
    assert violations(source, "m.py") == []
