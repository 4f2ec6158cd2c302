"""Every module of ``benchmarks/`` imports, and every script says how to run it.

``make bench`` runs six of the scripts; the others run by hand (``docs/performance.md``
gives each one's command), so nothing else would notice one that no longer imports.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

FOLDER = Path(__file__).parents[1] / "benchmarks"
MODULES = sorted(path.stem for path in FOLDER.glob("*.py") if path.stem != "__init__")


@pytest.mark.parametrize("name", MODULES)
def test_the_benchmark_module_imports(name):
    module = importlib.import_module(f"benchmarks.{name}")
    if 'if __name__ == "__main__":' in (FOLDER / f"{name}.py").read_text():
        assert callable(getattr(module, "main", None)), f"benchmarks/{name}.py has no main()"
        assert "Run:" in (module.__doc__ or ""), f"benchmarks/{name}.py does not say how to run"
