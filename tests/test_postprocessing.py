"""Keep-largest-component post-processing: its effect on HD95, the per-class choice, the record."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
import torch

from experiments.per_case import per_case_long
from experiments.tracking import KEEP_LARGEST_PARAM, record_keep_largest
from lightning_modules.metrics import case_metrics
from lightning_modules.postprocessing import (
    choose_classes,
    choose_from_dice,
    keep_largest_component,
    with_raw_metrics,
)
from lightning_modules.segmentation import SegmentationModule

SHAPE = (40, 40, 40)
SPACING = (1.0, 1.0, 2.0)
NAMES = ("background", "a", "b")


def sphere(radius: float, centre: tuple[int, int, int] = (14, 14, 14)) -> torch.Tensor:
    grid = torch.stack(torch.meshgrid(*(torch.arange(n) for n in SHAPE), indexing="ij"))
    centre_ = torch.tensor(centre).view(3, 1, 1, 1)
    return ((grid - centre_) ** 2).sum(0) <= radius**2


def blob(corner: int = 32, size: int = 5) -> torch.Tensor:
    """A cube far from the sphere: a false positive."""
    mask = torch.zeros(SHAPE, dtype=torch.bool)
    mask[corner : corner + size, corner : corner + size, corner : corner + size] = True
    return mask


def labels(*masks: tuple[torch.Tensor, int]) -> torch.Tensor:
    volume = torch.zeros(SHAPE, dtype=torch.long)
    for mask, value in masks:
        volume[mask] = value
    return volume


def hd95(prediction: torch.Tensor, truth: torch.Tensor, names=("background", "a")) -> float:
    rows = case_metrics(prediction, truth, class_names=names, spacing=SPACING)
    return float(rows.loc[0, "hd95"])


def test_removing_a_far_false_positive_brings_hd95_back_to_the_clean_value():
    truth = labels((sphere(9), 1))
    clean = labels((sphere(8), 1))  # a slightly small but clean prediction
    noisy = labels((sphere(8), 1), (blob(), 1))
    clean_hd95 = hd95(clean, truth)
    assert 0 < clean_hd95 < 3
    assert hd95(noisy, truth) > clean_hd95 + 10  # the blob is some 20 mm away
    cleaned = keep_largest_component(noisy, [1])
    assert torch.equal(cleaned, clean)
    assert hd95(cleaned, truth) == pytest.approx(clean_hd95)


def test_only_the_applied_class_loses_its_blob_each_class_on_its_own():
    main_a, blob_a = sphere(6, (10, 10, 10)), blob(30, 4)
    main_b, blob_b = sphere(6, (28, 10, 10)), torch.zeros(SHAPE, dtype=torch.bool)
    blob_b[2:5, 30:33, 30:33] = True
    # Class b voxels bridge class a's sphere and blob: a union of classes would be one piece.
    bridge = torch.zeros(SHAPE, dtype=torch.bool)
    bridge[16:30, 10, 10:31] = True
    bridge[30, 10, 10:31] = True
    bridge[30, 10:31, 30] = True
    prediction = labels((bridge, 2), (main_a, 1), (blob_a, 1), (main_b, 2), (blob_b, 2))
    before = prediction.clone()
    cleaned = keep_largest_component(prediction, [1])
    assert torch.equal(prediction, before)  # the input is left as it was
    assert not (cleaned[blob_a] == 1).any()
    assert (cleaned[blob_a] == 0).all()  # removed voxels become background
    assert (cleaned[main_a] == 1).all()
    assert torch.equal(cleaned == 2, prediction == 2)  # class b untouched, blob included
    both = keep_largest_component(prediction, [1, 2])
    assert (both[blob_b] == 0).all()
    assert (both[blob_a] == 0).all()  # the bridge of class b does not join class a's parts


def test_absent_classes_and_background_are_handled():
    prediction = labels((sphere(5), 1))
    assert torch.equal(keep_largest_component(prediction, [2]), prediction)
    with pytest.raises(ValueError, match="foreground"):
        keep_largest_component(prediction, [0, 1])


def two_parts() -> torch.Tensor:
    """Two equal, separate cubes: a structure whose truth is in two pieces."""
    mask = torch.zeros(SHAPE, dtype=torch.bool)
    mask[2:8, 2:8, 2:8] = True
    mask[30:36, 2:8, 2:8] = True
    return mask


def test_choice_keeps_a_class_whose_dice_improves_and_not_one_whose_dice_drops():
    # Class a: a true sphere and a false blob. Class b: truly two pieces, predicted exactly.
    truth = labels((sphere(7), 1), (two_parts(), 2))
    prediction = labels((sphere(7), 1), (blob(), 1), (two_parts(), 2))
    assert choose_classes([(prediction, truth)], num_classes=3) == (1,)
    # Ties count as applied (nnU-Net: at least as good); one Dice drop vetoes the class.
    raw = torch.tensor([[0.8, 0.9], [0.7, 0.9]])
    assert choose_from_dice(raw, torch.tensor([[0.8, 0.9], [0.7, 0.9]])) == (1, 2)
    assert choose_from_dice(raw, torch.tensor([[0.9, 0.95], [0.7, 0.8]])) == (1,)
    assert choose_classes([], num_classes=3) == ()


def test_raw_columns_hold_the_metrics_before_post_processing_of_the_chosen_classes():
    truth = labels((sphere(9), 1), (sphere(6, (30, 30, 30)), 2))
    raw = labels((sphere(8), 1), (blob(0, 5), 1), (sphere(6, (30, 30, 30)), 2))
    cleaned = keep_largest_component(raw, [1])
    rows = case_metrics(cleaned, truth, class_names=NAMES, spacing=SPACING)
    rows = with_raw_metrics(rows, raw, truth, classes=[1], class_names=NAMES, spacing=SPACING)
    before = case_metrics(raw, truth, class_names=NAMES, spacing=SPACING)
    for metric in ("dice", "hd95"):
        assert rows.loc[0, f"{metric}_raw"] == pytest.approx(before.loc[0, metric])
        assert rows.loc[1, f"{metric}_raw"] == rows.loc[1, metric]
    assert rows.loc[0, "hd95_raw"] > rows.loc[0, "hd95"] + 5
    # The ablation tables rank the final metrics only.
    long = per_case_long(rows.assign(subject="s0"), variant="v", task="multiclass")
    assert set(long["metric"]) == {"dice", "hd95", "assd", "precision", "recall"}


def test_the_choice_travels_with_the_checkpoint_and_applies_only_when_enabled():
    module = SegmentationModule(class_names=NAMES)
    module.keep_largest = ("a",)
    checkpoint: dict[str, Any] = {}
    module.on_save_checkpoint(checkpoint)
    restored = SegmentationModule(class_names=NAMES)
    restored.on_load_checkpoint(checkpoint)
    assert restored.applied_keep_largest == ("a",)
    noisy = labels((sphere(8), 1), (blob(), 1), (blob(2, 3), 2), (blob(10, 3), 2))
    assert torch.equal(restored.postprocess(noisy), keep_largest_component(noisy, [1]))
    off = SegmentationModule(class_names=NAMES, postprocessing=False)
    off.on_load_checkpoint(checkpoint)
    assert off.applied_keep_largest == ()
    assert torch.equal(off.postprocess(noisy), noisy)
    SegmentationModule(class_names=NAMES).on_load_checkpoint({})  # an older checkpoint


class FakeRuns:
    """The MLflow client calls `record_keep_largest` makes, with MLflow's immutable params."""

    def __init__(self) -> None:
        self.params: dict[str, str] = {}
        self.tags: dict[str, str] = {}

    def get_run(self, run_id: str) -> Any:
        return SimpleNamespace(data=SimpleNamespace(params=dict(self.params)))

    def log_param(self, run_id: str, key: str, value: str) -> None:
        if key in self.params and self.params[key] != value:
            raise RuntimeError(f"param {key} changed")
        self.params[key] = value

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.tags[key] = value


@pytest.mark.parametrize(
    ("tests", "param", "tag"),
    [
        ([()], "none", None),
        ([("a", "b")], "a,b", None),
        ([("a",), ("a",)], "a", None),
        ([("a",), ("b",)], "a", "b"),  # a second test with another choice: a tag
    ],
)
def test_the_choice_is_a_run_param_kept_immutable(tests, param, tag):
    runs = FakeRuns()
    logger = SimpleNamespace(experiment=runs, run_id="run")
    for names in tests:
        record_keep_largest(logger, names)
    assert runs.params == {KEEP_LARGEST_PARAM: param}
    assert runs.tags.get(KEEP_LARGEST_PARAM) == tag


def test_per_case_long_ignores_raw_columns():
    per_case = pd.DataFrame({"subject": ["s"], "class": ["a"], "hd95": [1.0], "hd95_raw": [9.0]})
    long = per_case_long(per_case, variant="v", task="t")
    assert list(long["metric"]) == ["hd95"]
