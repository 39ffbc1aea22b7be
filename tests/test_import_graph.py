"""Imports point one way: assets_defs -> resources -> the Dagster-free core (imaging, models).

Read from the source (ast), not by importing, so an import inside a function counts too
and nothing has to be installed for the check to see it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORE = [REPO / "adgen_dagster" / "imaging", REPO / "adgen_dagster" / "models",
        # the stage registry, its steps, the Dagster-free runner, the encoders and the product threads it uses
        *(REPO / "adgen_dagster" / f for f in ("stages.py", "steps.py", "stage_runner.py", "encoding.py", "product_threads.py"))]
CORE_MUST_NOT_IMPORT = ("resources", "assets_defs", "dagster")


def imported_modules(path: Path, root: Path = REPO) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a file, relative ones resolved."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
    return found


def violations(folders: list[Path], forbidden: tuple[str, ...], root: Path = REPO) -> list[str]:
    bad = []
    for folder in folders:
        for path in sorted(folder.rglob("*.py")) if folder.is_dir() else [folder]:
            for line, module in imported_modules(path, root):
                top = module.split(".")[0]
                if top in forbidden:
                    bad.append(f"{path.relative_to(root)}:{line} imports {module}")
    return bad


def test_core_imports_nothing_from_resources_assets_or_dagster():
    assert all(path.exists() for path in CORE)
    assert violations(CORE, CORE_MUST_NOT_IMPORT) == []


def test_resources_import_nothing_from_assets():
    assert violations([REPO / "resources"], ("assets_defs",)) == []


@pytest.mark.parametrize("line", ["import dagster as dg", "from resources.cache import ResultCache",
                                  "    from assets_defs import common", "from ..resources import x"])
def test_the_check_sees_a_planted_import(tmp_path, line):
    """The check can fail: a core module with a bad import (top level, aliased, inside a function) is reported."""
    folder = tmp_path / "adgen_dagster" / "imaging"  # a copy of the core's layout, not the real tree (tests run in parallel)
    folder.mkdir(parents=True)
    body = f"def f():\n{line}\n" if line.startswith(" ") else f"{line}\n"
    (folder / "_planted_for_test.py").write_text(body)
    found = violations([folder], CORE_MUST_NOT_IMPORT, root=tmp_path)
    if line.startswith("from .."):  # relative: adgen_dagster.resources, not the top-level package
        assert found == []
    else:
        assert found == [f"adgen_dagster/imaging/_planted_for_test.py:{1 + body.startswith('def')} imports "
                         f"{line.split()[1]}"]
