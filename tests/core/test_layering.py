"""The core imports nothing of ours: `aicd` never imports `backend`, `worker` or `ui` (dependencies point
ui → HTTP → backend → aicd, worker → backend + aicd). `aicd up` reaches the CLI as an entry-point plugin."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OURS = ("backend", "worker", "ui")


def _imported(tree: ast.AST) -> list[str]:
    """Absolute module names an AST imports, including `importlib.import_module("…")` / `__import__`."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names.append(node.args[0].value)
    return names


def test_no_core_module_imports_the_service() -> None:
    offenders = [
        f"{path.relative_to(REPO)}: {name}"
        for path in sorted((REPO / "aicd").rglob("*.py"))
        for name in _imported(ast.parse(path.read_text(encoding="utf-8")))
        if name.split(".")[0] in OURS
    ]
    assert not offenders, offenders


def test_the_scan_sees_every_kind_of_import() -> None:
    """The check above cannot pass vacuously: each spelling of an import of ours is caught."""
    source = (
        "import backend.db\nfrom worker import tasks\nimport importlib\nimportlib.import_module('ui.app')\n"
    )
    assert [n.split(".")[0] for n in _imported(ast.parse(source))] == ["backend", "worker", "importlib", "ui"]


def test_importing_the_core_loads_none_of_the_service() -> None:
    modules = [
        ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for path in sorted((REPO / "aicd").rglob("*.py"))
        if "cli" not in path.relative_to(REPO).parts and path.name != "__main__.py"
    ]  # the CLI loads its plugins (`aicd up`) by design
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted(n for n in sys.modules if n.split('.')[0] in {OURS!r}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout[-2000:]


def test_aicd_up_is_a_plugin_of_the_cli() -> None:
    """`aicd up` lives in backend/up.py and is registered through the `aicd.cli` entry-point group."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["aicd.cli"] == {"up": "backend.up:register"}
    assert not (REPO / "aicd" / "cli" / "serve.py").exists()
