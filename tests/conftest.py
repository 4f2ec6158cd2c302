"""Shared fixtures: a tiny phantom cohort written once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from datamodules.phantom import write_phantom

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"
BASELINE = CONFIGS / "baseline.yaml"
TINY_SHAPE = (48, 48, 32)


@pytest.fixture(scope="session")
def phantom_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six small phantom subjects (1 test, 1 validation, 4 training by the seeded split)."""
    return write_phantom(tmp_path_factory.mktemp("phantom"), 6, seed=0, shape=TINY_SHAPE)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder with the default local MLflow store (``./mlruns``)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path
