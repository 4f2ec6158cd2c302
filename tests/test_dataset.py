"""The dataset description: read, checked, and what the data module takes from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from datamodules.brain import BrainDataModule
from datamodules.dataset import (
    DatasetDescription,
    DatasetDescriptionError,
    load_description,
    write_description,
)
from datamodules.manifest import ManifestError
from tests.cohort import DESCRIPTION


def write_yaml(folder: Path, content: object) -> Path:
    (folder / "manifest.csv").write_text("subject,t1,label\n")
    path = folder / "dataset.yaml"
    path.write_text(yaml.safe_dump(content))
    return folder / "manifest.csv"


def test_a_written_description_reads_back(tmp_path):
    write_description(tmp_path, DESCRIPTION)
    (tmp_path / "manifest.csv").write_text("subject,t1,label\n")
    description = load_description(tmp_path / "manifest.csv")
    assert description == DESCRIPTION
    assert description.structures == ("gland", "duct", "lesion")
    assert description.thin_labels == (5,)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([1, 2], "expected a mapping"),
        ({"channels": ["t1"]}, r"missing keys \['class_map'\]"),
        ({"channels": ["t1"], "class_map": {1: "a"}, "labels": 3}, r"unknown keys \['labels'\]"),
        ({"channels": [], "class_map": {1: "a"}}, "channels must be a non-empty list"),
        ({"channels": "t1", "class_map": {1: "a"}}, "expected a list of names"),
        ({"channels": ["t1"], "class_map": {0: "a"}}, "positive integers"),
        ({"channels": ["t1"], "class_map": {1: "a"}, "thin_structures": ["b"]}, r"\['b'\]"),
        ({"channels": ["t1", "t1"], "class_map": {1: "a"}}, "must not repeat a name"),
        ({"channels": ["t1", "label"], "class_map": {1: "a"}}, r"\['label'\] are reserved"),
        ({"channels": ["t1"], "class_map": {1: "mean"}}, r"other than \['background', 'mean'\]"),
    ],
)
def test_a_bad_description_names_its_file_and_problem(tmp_path, content, message):
    manifest = write_yaml(tmp_path, content)
    with pytest.raises(DatasetDescriptionError, match=message) as caught:
        load_description(manifest)
    assert str(tmp_path / "dataset.yaml") in str(caught.value)


def test_a_missing_description_or_manifest_is_a_manifest_error(tmp_path):
    (tmp_path / "manifest.csv").write_text("subject,t1,label\n")
    with pytest.raises(ManifestError, match=r"dataset\.yaml does not exist"):
        load_description(tmp_path / "manifest.csv")
    with pytest.raises(ManifestError, match=r"'.*nowhere\.csv': file does not exist"):
        load_description(tmp_path / "nowhere.csv")


def test_the_data_module_takes_channels_and_classes_from_the_description(tmp_path):
    other = tmp_path / "elsewhere.yaml"
    other.write_text(yaml.safe_dump(DESCRIPTION.to_dict()))
    data = BrainDataModule(str(tmp_path / "m.csv"), dataset=str(other), task="binary:lesion")
    assert data.channels == ("t1",)
    assert data.class_map == {2: "gland", 5: "duct", 7: "lesion"}
    assert data.class_names == ("background", "lesion")
    assert data.task.label_values == (0, 7)
    # Explicit arguments choose from it: a channel subset, another class map.
    two = DatasetDescription(("t1", "t2"), {1: "a"})
    write_description(tmp_path, two)
    (tmp_path / "m.csv").write_text("subject,t1,t2,label\n")
    subset = BrainDataModule(str(tmp_path / "m.csv"), channels=["t2"], class_map={1: "b"})
    assert subset.channels == ("t2",) and subset.class_names == ("background", "b")
