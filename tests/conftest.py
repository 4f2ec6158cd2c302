"""Shared fixtures: a tiny phantom cohort, a two-subject manifest, the tables' study data."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from datamodules.phantom import write_phantom
from tests import manifest_cohort, table_data

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"
BASELINE = CONFIGS / "baseline.yaml"
TINY_SHAPE = (48, 48, 32)


def pytest_configure(config: pytest.Config) -> None:
    """Under ``pytest -n N`` (pytest-xdist), each worker and its subprocesses get one thread.

    N torch processes with the machine's full thread count each slow one another down
    many times over; one thread each lets N workers share N cores.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


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


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """A valid two-subject manifest with channels t2 and mra and labels 0..4."""
    return manifest_cohort.write_cohort(tmp_path)


@pytest.fixture
def study() -> pd.DataFrame:
    """``table_data.study_results``: orders A > B > C known in advance."""
    return table_data.study_results()


@pytest.fixture
def curves() -> pd.DataFrame:
    """``table_data.validation_curves``: A, B and C over four epochs."""
    return table_data.validation_curves()


@pytest.fixture
def conditions() -> tuple[pd.DataFrame, pd.DataFrame]:
    """``table_data.label_conditions``: N1 > N2 > N3 under three label conditions."""
    return table_data.label_conditions()
