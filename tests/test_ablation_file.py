"""Ablation files: grid axes from the dataset, budgets per profile, --set settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from experiments.ablation_file import AblationError, expand, load_ablation, parse_settings
from tests.conftest import BASELINE

PROFILES = Path(__file__).resolve().parents[1] / "experiments" / "configs" / "profiles"


def study_file(folder: Path, **extra: object) -> Path:
    study = {
        "name": "per-structure",
        "config": str(BASELINE),
        "grid": {
            "task": {
                "multiclass": {"data.task": "multiclass"},
                "{structure}": {"data.task": "binary:{structure}", "tags": ["{structure}", 1]},
            },
            "loss": {"ce": {"model.init_args.loss": "ce"}},
        },
        **extra,
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def test_a_structure_entry_is_one_entry_per_structure_of_the_data(tmp_path):
    study = load_ablation(study_file(tmp_path))
    variants = expand(study, structures=("gland", "duct"))
    assert [v.name for v in variants] == ["multiclass-ce", "gland-ce", "duct-ce"]
    assert variants[2].axes == {"task": "duct", "loss": "ce"}
    assert variants[2].overrides["data.task"] == "binary:duct"
    assert variants[2].overrides["tags"] == ["duct", 1]  # nested strings too, others kept
    assert [v.name for v in expand(study)] == ["multiclass-ce"]  # no structures: none


def test_an_axis_left_empty_by_the_data_is_an_error(tmp_path):
    path = study_file(tmp_path)
    study = yaml.safe_load(path.read_text())
    del study["grid"]["task"]["multiclass"]
    path.write_text(yaml.safe_dump(study))
    with pytest.raises(AblationError, match=r"axes \['task'\] have no entries"):
        expand(load_ablation(path))


def test_budgets_are_per_existing_profile(tmp_path):
    study = load_ablation(study_file(tmp_path, budgets={"quick": {"trainer.max_epochs": 3}}))
    assert study.budgets == {"quick": {"trainer.max_epochs": 3}}
    with pytest.raises(AblationError, match="budgets` names profile 'huge'"):
        load_ablation(study_file(tmp_path, budgets={"huge": {}}))
    with pytest.raises(AblationError, match=r"unknown keys \['budget'\]"):
        load_ablation(study_file(tmp_path, budget={}))


def test_profile_seeds_are_per_existing_profile(tmp_path):
    study = load_ablation(study_file(tmp_path, profile_seeds={"paper": [1, 2, 3]}))
    assert study.profile_seeds == {"paper": [1, 2, 3]} and study.seeds == [42]
    with pytest.raises(AblationError, match="profile_seeds` names profile 'huge'"):
        load_ablation(study_file(tmp_path, profile_seeds={"huge": [1]}))
    for bad in ([], [1.5], "1"):
        with pytest.raises(AblationError, match=r"`profile_seeds\.paper` must be a list"):
            load_ablation(study_file(tmp_path, profile_seeds={"paper": bad}))


def test_settings_read_values_as_yaml():
    assert parse_settings(["trainer.max_epochs=2", "data.weak_labels=[sparse:4]", "a.b="]) == {
        "trainer.max_epochs": 2,
        "data.weak_labels": ["sparse:4"],
        "a.b": None,
    }
    for bad in ("trainer.max_epochs", "=3", "x=[1"):
        with pytest.raises(AblationError, match="--set"):
            parse_settings([bad])


def test_profiles_state_budgets_not_networks():
    # A network without `depth` would reject a profile that sets it.
    for path in PROFILES.glob("*.yaml"):
        content = yaml.safe_load(path.read_text())
        assert set(content) <= {"profile", "trainer", "data"}, path.name


def test_an_expanded_entry_may_not_take_an_existing_name(tmp_path):
    study = load_ablation(study_file(tmp_path))
    with pytest.raises(AblationError, match="named 'multiclass', like an entry"):
        expand(study, structures=("gland", "multiclass"))
