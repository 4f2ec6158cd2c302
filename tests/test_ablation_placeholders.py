"""Placeholders an ablation file writes once for any dataset (channels, thin structures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.ablation_file import AblationError, expand, load_ablation
from experiments.ablation_placeholders import channel_substituted

PSEUDO = Path(__file__).resolve().parents[1] / "experiments" / "ablations" / "pseudo.yaml"


def test_a_source_of_several_channels_is_spliced_into_lists_only():
    channels = {"{source}": ["t1", "pd"], "{target}": ["t2"], "{pseudo}": ["pseudo_t2"]}
    assert channel_substituted(["{source}", "{pseudo}"], channels) == ["t1", "pd", "pseudo_t2"]
    assert channel_substituted("binary:{target}", channels) == "binary:t2"
    with pytest.raises(ValueError, match="stands for 2 channels"):
        channel_substituted("x{source}", channels)


def test_thin_structure_entries_expand_to_nothing_without_thin_structures(in_tmp):
    study = load_ablation(PSEUDO)
    study.grid["task"] = {"{thin_structure}": {"data.task": "binary:{thin_structure}"}}
    with pytest.raises(AblationError, match=r"axes \['task'\] have no entries"):
        expand(study, structures=("gland",))
