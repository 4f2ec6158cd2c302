"""Tests for lightning_modules.losses: hand-computed values, MONAI/torch equivalence, masks.

The 12 losses of the loss study (bases ``ce`` and ``dice`` x weightings ``none``,
``inverse``, ``median``, ``focal``, ``dtm``, ``dpt``) run through every property
test below, with the distance maps that ``dtm`` and ``dpt`` need.
"""

from __future__ import annotations

import math

import monai.losses
import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn
from torch.nn import functional as F

from lightning_modules.losses import (
    LOSSES,
    WEIGHTINGS,
    CrossEntropyLoss,
    DiceCELoss,
    DiceLoss,
    DistancePenaltyWeighting,
    DistanceTransformWeighting,
    FocalWeighting,
    InverseFrequencyWeighting,
    MedianFrequencyWeighting,
    NoWeighting,
    build_loss,
    distance_penalty,
)

LN2 = math.log(2.0)
FREQUENCIES = [0.6, 0.3, 0.1]  # class_frequencies for the 3-class cases (median 0.3)
WEIGHTING_OPTIONS: dict[str, dict[str, object]] = {"median": {"class_frequencies": FREQUENCIES}}

# The 12 losses of the loss study, with the options each needs for 3 classes.
STUDY: list[tuple[str, str, dict[str, object]]] = [
    (base, weighting, WEIGHTING_OPTIONS.get(weighting, {}))
    for base in ("ce", "dice")
    for weighting in WEIGHTINGS
]
# Every loss configuration the properties below must hold for.
CONFIGS: list[tuple[str, str, dict[str, object]]] = [
    ("ce", "none", {}),
    ("dice", "none", {"form": "global", "include_background": True}),
    ("dice", "none", {"form": "global", "include_background": False}),
    ("dice", "none", {"form": "mean_class", "include_background": True}),
    ("dice", "none", {"form": "mean_class", "include_background": False}),
    ("dice_ce", "none", {"form": "global"}),
    ("dice_ce", "none", {"form": "mean_class", "include_background": False, "dice_weight": 0.5}),
    *[config for config in STUDY if config[1] != "none"],
    ("dice", "inverse", {"form": "mean_class", "include_background": False}),
    ("dice", "median", {"form": "mean_class", "class_frequencies": FREQUENCIES}),
    ("dice", "focal", {"form": "mean_class", "gamma": 1.0}),
    ("dice", "dtm", {"include_background": False, "sigma": 1.0, "boundary_weight": 3.0}),
    ("dice", "dpt", {"form": "mean_class", "include_background": False}),
    ("ce", "focal", {"gamma": 0.5}),
    ("dice_ce", "inverse", {}),
    ("dice_ce", "dpt", {"form": "mean_class"}),
]


def config_id(config: tuple[str, str, dict[str, object]]) -> str:
    base, weighting, options = config
    shown = {k: v for k, v in options.items() if k != "class_frequencies"}
    return "-".join([base, weighting, *(f"{k}={v}" for k, v in shown.items())])


CONFIG_IDS = [config_id(config) for config in CONFIGS]
STUDY_IDS = [config_id(config) for config in STUDY]
SPATIAL_SHAPES = [(5, 6), (4, 5, 3)]


def random_case(
    spatial: tuple[int, ...], *, batch: int = 2, classes: int = 3, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits ``(B, C, *spatial)`` in double precision and labels ``(B, *spatial)``."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, classes, *spatial, generator=generator, dtype=torch.float64)
    target = torch.randint(0, classes, (batch, *spatial), generator=generator)
    return logits, target


def signed_distance(target: torch.Tensor, classes: int) -> torch.Tensor:
    """Per-class signed distance maps ``(B, C, *spatial)`` of labels ``(B, *spatial)``.

    The data pipeline's convention: ``1 - edt`` inside (0 on the inner boundary,
    negative deeper), the distance to the structure outside, the volume diagonal
    for an absent class.
    """
    maps = []
    for labels in target.numpy():
        diagonal = float(np.sqrt(np.sum(np.square(labels.shape))))
        item = np.full((classes, *labels.shape), diagonal)
        for index in range(classes):
            inside = labels == index
            if inside.any():
                padded = ndimage.distance_transform_edt(np.pad(inside, 1))
                inside_distance = padded[(slice(1, -1),) * labels.ndim]
                outside_distance = ndimage.distance_transform_edt(~inside)
                item[index] = np.where(inside, 1 - inside_distance, outside_distance)
        maps.append(item)
    return torch.tensor(np.stack(maps), dtype=torch.float64)


def make_loss(config: tuple[str, str, dict[str, object]]) -> nn.Module:
    base, weighting, options = config
    return build_loss(base, weighting, **options)


def value_and_grad(
    loss: nn.Module,
    logits: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    distance: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss value and its gradient with respect to the logits."""
    logits = logits.detach().clone().requires_grad_(True)
    value = loss(logits, target, mask, distance)
    (grad,) = torch.autograd.grad(value, logits)
    return value.detach(), grad


def probabilities_to_logits(probabilities: list[list[float]]) -> torch.Tensor:
    """``(C, N)`` probabilities -> ``(1, C, N)`` logits whose softmax gives them back."""
    return torch.tensor(probabilities, dtype=torch.float64).log().unsqueeze(0)


# --- build_loss -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "options", "expected_type"),
    [
        ("ce", {}, CrossEntropyLoss),
        ("dice", {}, DiceLoss),
        ("dice", {"form": "mean_class", "include_background": False, "smooth": 1.0}, DiceLoss),
        ("dice_ce", {}, DiceCELoss),
        ("dice_ce", {"dice_weight": 2.0, "ce_weight": 0.5, "form": "mean_class"}, DiceCELoss),
    ],
)
def test_build_loss_builds_the_named_base(
    base: str, options: dict[str, object], expected_type: type[nn.Module]
) -> None:
    loss = build_loss(base, **options)
    assert type(loss) is expected_type
    dice = loss.dice if isinstance(loss, DiceCELoss) else loss
    for key in ("form", "include_background", "smooth"):
        if key in options:
            assert getattr(dice, key) == options[key]
    for key in ("dice_weight", "ce_weight"):
        if key in options:
            assert getattr(loss, key) == options[key]


def test_build_loss_explicit_none_weighting() -> None:
    assert isinstance(build_loss("dice", "none"), DiceLoss)
    assert isinstance(build_loss("dice", "none").weighting, NoWeighting)


def test_registries_list_the_two_bases_and_six_weightings() -> None:
    assert {"ce", "dice"} <= set(LOSSES)
    assert list(WEIGHTINGS) == ["none", "inverse", "median", "focal", "dtm", "dpt"]


@pytest.mark.parametrize(
    ("base", "weighting", "options", "weighting_type", "attributes"),
    [
        ("ce", "inverse", {}, InverseFrequencyWeighting, {}),
        ("dice", "median", {"class_frequencies": FREQUENCIES}, MedianFrequencyWeighting, {}),
        ("ce", "focal", {}, FocalWeighting, {"gamma": 2.0}),
        ("dice", "focal", {"gamma": 0.5, "form": "mean_class"}, FocalWeighting, {"gamma": 0.5}),
        ("ce", "dtm", {}, DistanceTransformWeighting, {"sigma": 5.0, "boundary_weight": 10.0}),
        ("dice", "dtm", {"sigma": 2, "boundary_weight": 0}, DistanceTransformWeighting,
         {"sigma": 2.0, "boundary_weight": 0.0}),
        ("dice", "dpt", {"smooth": 1.0}, DistancePenaltyWeighting, {}),
    ],
)  # fmt: skip
def test_build_loss_routes_options_to_the_weighting_and_the_base(
    base: str,
    weighting: str,
    options: dict[str, object],
    weighting_type: type[nn.Module],
    attributes: dict[str, float],
) -> None:
    loss = build_loss(base, weighting, **options)
    assert type(loss) is LOSSES[base]
    assert type(loss.weighting) is weighting_type
    for key, value in attributes.items():
        assert getattr(loss.weighting, key) == value
    for key in ("form", "smooth"):
        if key in options:
            assert getattr(loss, key) == options[key]


def test_dice_ce_shares_its_weighting_between_both_terms() -> None:
    loss = build_loss("dice_ce", "focal", gamma=3.0)
    assert loss.dice.weighting is loss.cross_entropy.weighting
    assert loss.dice.weighting.gamma == 3.0


def test_median_weights_are_the_median_over_each_frequency() -> None:
    # median(0.6, 0.3, 0.1) = 0.3 -> 0.3/0.6, 0.3/0.3, 0.3/0.1
    weighting = MedianFrequencyWeighting(class_frequencies=FREQUENCIES)
    torch.testing.assert_close(
        weighting.class_weights, torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64)
    )
    # an even count takes the mean of the middle two: median(1, 2, 3, 6) = 2.5
    weighting = MedianFrequencyWeighting(class_frequencies=(1, 2, 3, 6))
    torch.testing.assert_close(
        weighting.class_weights, torch.tensor([2.5, 1.25, 2.5 / 3, 2.5 / 6], dtype=torch.float64)
    )


@pytest.mark.parametrize(
    ("args", "options", "named"),
    [
        (("focal",), {}, "'focal'"),
        (("Dice",), {}, "'Dice'"),
        (("dice", "boundary"), {}, "'boundary'"),
        (("ce",), {"form": "global"}, "form"),
        (("dice",), {"bogus": 1}, "bogus"),
        (("dice_ce",), {"gamma": 2.0}, "gamma"),
        (("dice",), {"form": "per_voxel"}, "per_voxel"),
        (("dice_ce",), {"form": "per_voxel"}, "per_voxel"),
        (("dice",), {"smooth": -1.0}, "smooth"),
        (("dice_ce",), {"dice_weight": -1.0}, "dice_weight"),
        (("dice_ce",), {"ce_weight": float("nan")}, "ce_weight"),
        # weighting options
        (("ce", "focal"), {"gamma": -1.0}, "gamma"),
        (("dice", "focal"), {"gamma": "2"}, "gamma"),
        (("ce", "focal"), {"gamma": float("inf")}, "gamma"),
        (("ce", "inverse"), {"gamma": 2.0}, "gamma"),
        (("dice", "none"), {"class_frequencies": FREQUENCIES}, "class_frequencies"),
        (("ce", "median"), {}, "class_frequencies"),
        (("dice", "median"), {"class_frequencies": None}, "class_frequencies"),
        (("ce", "median"), {"class_frequencies": [0.5, 0.0, 0.5]}, "class_frequencies"),
        (("ce", "median"), {"class_frequencies": [0.5, -0.1, 0.6]}, "-0.1"),
        (("ce", "median"), {"class_frequencies": [0.5, float("nan"), 0.5]}, "class_frequencies"),
        (("ce", "median"), {"class_frequencies": [1.0]}, "class_frequencies"),
        (("ce", "median"), {"class_frequencies": "abc"}, "class_frequencies"),
        (("ce", "median"), {"class_frequencies": [[0.5, 0.5]]}, "class_frequencies"),
        (("ce", "dtm"), {"sigma": 0.0}, "sigma"),
        (("dice", "dtm"), {"sigma": -2.0}, "sigma"),
        (("dice", "dtm"), {"boundary_weight": -1.0}, "boundary_weight"),
        (("dice", "dpt"), {"sigma": 1.0}, "sigma"),
    ],
)
def test_build_loss_rejects_bad_names_and_options(
    args: tuple[str, ...], options: dict[str, object], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        build_loss(*args, **options)


@pytest.mark.parametrize("base", ["ce", "dice", "dice_ce"])
def test_median_frequencies_of_the_wrong_length_are_rejected_at_the_call(base: str) -> None:
    logits, target = random_case((4, 4), classes=3)
    loss = build_loss(base, "median", class_frequencies=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"class_frequencies has 2 values .* 3 classes"):
        loss(logits, target)


@pytest.mark.parametrize("base", ["ce", "dice", "dice_ce"])
@pytest.mark.parametrize("weighting", ["dtm", "dpt"])
def test_distance_weightings_need_distance_maps(base: str, weighting: str) -> None:
    logits, target = random_case((4, 4), classes=3)
    loss = build_loss(base, weighting)
    with pytest.raises(ValueError, match=f"weighting '{weighting}' needs distance"):
        loss(logits, target)
    with pytest.raises(ValueError, match="distance shape"):
        loss(logits, target, distance=signed_distance(target, 3)[:, :2])
    with pytest.raises(ValueError, match="distance shape"):
        loss(logits, target, distance=signed_distance(target, 3)[0])


# --- hand-computed values --------------------------------------------------------------

# Example A, shape (B, C, H, W) = (1, 2, 2, 1). Logits (0, ln 3) give softmax (1/4, 3/4);
# logits (0, 0) give (1/2, 1/2). Voxel 1 is class 1, voxel 2 is class 0.
EXAMPLE_A_LOGITS = torch.tensor([[[[0.0], [0.0]], [[math.log(3.0)], [0.0]]]], dtype=torch.float64)
EXAMPLE_A_TARGET = torch.tensor([[[1], [0]]])
# Class 0: intersection = 1/2, sum g + sum p = 1 + (1/4 + 1/2) = 7/4 -> Dice 4/7.
# Class 1: intersection = 3/4, sum g + sum p = 1 + (3/4 + 1/2) = 9/4 -> Dice 2/3.


@pytest.mark.parametrize(
    ("options", "mask", "expected"),
    [
        # CE = (-ln 3/4 - ln 1/2) / 2
        ({}, None, (math.log(4 / 3) + LN2) / 2),
        # only voxel 1 labelled: -ln 3/4
        ({}, [[[1.0], [0.0]]], math.log(4 / 3)),
        # only voxel 2 labelled: -ln 1/2
        ({}, [[[0.0], [1.0]]], LN2),
        # a fractional mask weights voxels: (1 * ln 4/3 + 0.5 * ln 2) / 1.5
        ({}, [[[1.0], [0.5]]], (math.log(4 / 3) + 0.5 * LN2) / 1.5),
    ],
)
def test_cross_entropy_by_hand(
    options: dict[str, object], mask: list[list[list[float]]] | None, expected: float
) -> None:
    mask_tensor = None if mask is None else torch.tensor(mask, dtype=torch.float64)
    value = CrossEntropyLoss(**options)(EXAMPLE_A_LOGITS, EXAMPLE_A_TARGET, mask_tensor)
    assert value.item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # global: 1 - 2 (1/2 + 3/4) / (7/4 + 9/4) = 1 - 5/8
        ({"form": "global", "smooth": 0.0}, 3 / 8),
        # mean_class: 1 - (4/7 + 2/3) / 2 = 1 - 13/21
        ({"form": "mean_class", "smooth": 0.0}, 8 / 21),
        # without background both forms are 1 - Dice of class 1 = 1 - 2/3
        ({"form": "global", "include_background": False, "smooth": 0.0}, 1 / 3),
        ({"form": "mean_class", "include_background": False, "smooth": 0.0}, 1 / 3),
        # smooth 1 on class 1 alone: 1 - (3/2 + 1) / (9/4 + 1) = 1 - 10/13
        ({"form": "mean_class", "include_background": False, "smooth": 1.0}, 3 / 13),
        # smooth 1, global with background: 1 - (5/2 + 1) / (4 + 1) = 1 - 7/10
        ({"form": "global", "smooth": 1.0}, 3 / 10),
    ],
)
def test_dice_by_hand_two_classes(options: dict[str, object], expected: float) -> None:
    value = DiceLoss(**options)(EXAMPLE_A_LOGITS, EXAMPLE_A_TARGET)
    assert value.item() == pytest.approx(expected, abs=1e-12)


# Example B, shape (B, C, N) = (1, 3, 4), class 2 absent from the target.
# Columns are voxels; rows are the softmax probabilities of classes 0, 1, 2.
EXAMPLE_B_LOGITS = probabilities_to_logits(
    [
        [1 / 2, 1 / 4, 1 / 4, 1 / 2],
        [1 / 4, 1 / 2, 1 / 4, 1 / 4],
        [1 / 4, 1 / 4, 1 / 2, 1 / 4],
    ]
)
EXAMPLE_B_TARGET = torch.tensor([[0, 1, 1, 0]])
# Class 0: I = 1/2 + 1/2 = 1,   sum p = 3/2, sum g = 2 -> Dice 2 / (7/2) = 4/7.
# Class 1: I = 1/2 + 1/4 = 3/4, sum p = 5/4, sum g = 2 -> Dice (3/2) / (13/4) = 6/13.
# Class 2: I = 0,               sum p = 5/4, sum g = 0 -> Dice s / (5/4 + s).


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"form": "mean_class", "smooth": 0.0}, 1 - (4 / 7 + 6 / 13 + 0) / 3),
        ({"form": "mean_class", "include_background": False, "smooth": 0.0}, 1 - (6 / 13) / 2),
        (
            {"form": "mean_class", "include_background": False, "smooth": 1.0},
            1 - ((3 / 2 + 1) / (13 / 4 + 1) + 1 / (5 / 4 + 1)) / 2,
        ),
        # global: 1 - 2 (1 + 3/4 + 0) / 8 (sum g + sum p = 2 N = 8 with background)
        ({"form": "global", "smooth": 0.0}, 1 - 3.5 / 8),
        # global, no background: 1 - 2 (3/4) / (13/4 + 5/4)
        ({"form": "global", "include_background": False, "smooth": 0.0}, 2 / 3),
    ],
)
def test_dice_by_hand_three_classes_one_absent(options: dict[str, object], expected: float) -> None:
    value = DiceLoss(**options)(EXAMPLE_B_LOGITS, EXAMPLE_B_TARGET)
    assert value.item() == pytest.approx(expected, abs=1e-12)


def test_cross_entropy_by_hand_three_classes() -> None:
    # -(ln 1/2 + ln 1/2 + ln 1/4 + ln 1/2) / 4 = 5 ln 2 / 4
    value = CrossEntropyLoss()(EXAMPLE_B_LOGITS, EXAMPLE_B_TARGET)
    assert value.item() == pytest.approx(5 * LN2 / 4, abs=1e-12)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # 1 * (3/8) + 1 * CE
        ({"smooth": 0.0}, 3 / 8 + (math.log(4 / 3) + LN2) / 2),
        ({"smooth": 0.0, "dice_weight": 2.0, "ce_weight": 0.0}, 2 * 3 / 8),
        ({"smooth": 0.0, "dice_weight": 0.0, "ce_weight": 3.0}, 3 * (math.log(4 / 3) + LN2) / 2),
        (
            {"smooth": 0.0, "form": "mean_class", "dice_weight": 0.5, "ce_weight": 2.0},
            0.5 * 8 / 21 + 2.0 * (math.log(4 / 3) + LN2) / 2,
        ),
    ],
)
def test_dice_ce_is_the_weighted_sum(options: dict[str, object], expected: float) -> None:
    value = DiceCELoss(**options)(EXAMPLE_A_LOGITS, EXAMPLE_A_TARGET)
    assert value.item() == pytest.approx(expected, abs=1e-12)


# --- equivalence with torch and MONAI ----------------------------------------------------


@pytest.mark.parametrize("spatial", SPATIAL_SHAPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_cross_entropy_equals_torch(spatial: tuple[int, ...], seed: int) -> None:
    logits, target = random_case(spatial, seed=seed, classes=4)
    ours = CrossEntropyLoss()(logits, target)
    reference = F.cross_entropy(logits, target)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize("spatial", SPATIAL_SHAPES)
def test_masked_cross_entropy_equals_torch_ignore_index(spatial: tuple[int, ...]) -> None:
    """A binary mask is the same as torch's ``ignore_index`` on the unlabelled voxels."""
    logits, target = random_case(spatial, seed=3)
    mask = torch.rand(target.shape, generator=torch.Generator().manual_seed(4)) > 0.4
    ours = CrossEntropyLoss()(logits, target, mask)
    reference = F.cross_entropy(logits, target.masked_fill(~mask, -100), ignore_index=-100)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize("spatial", SPATIAL_SHAPES)
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("smooth", [1e-5, 1.0])
def test_mean_class_dice_equals_monai_dice(
    spatial: tuple[int, ...], include_background: bool, smooth: float
) -> None:
    """``form="mean_class"`` equals MONAI ``DiceLoss(batch=True)``.

    MONAI computes ``1 - mean_c (2 tp_c + s) / (2 tp_c + fp_c + fn_c + s)`` with
    ``2 tp + fp + fn = sum p + sum g``. Equality needs ``batch=True``: ours pools the
    batch before the ratio, MONAI's default (``batch=False``) averages per-item ratios.
    """
    logits, target = random_case(spatial, seed=5, classes=4)
    ours = DiceLoss(form="mean_class", include_background=include_background, smooth=smooth)
    reference = monai.losses.DiceLoss(
        include_background=include_background,
        softmax=True,
        to_onehot_y=True,
        batch=True,
        smooth_nr=smooth,
        smooth_dr=smooth,
    )
    torch.testing.assert_close(
        ours(logits, target), reference(logits, target.unsqueeze(1)), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("spatial", SPATIAL_SHAPES)
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("smooth", [1e-5, 1.0])
def test_global_dice_equals_monai_uniform_generalized_dice(
    spatial: tuple[int, ...], include_background: bool, smooth: float
) -> None:
    """``form="global"`` equals MONAI ``GeneralizedDiceLoss(w_type="uniform", batch=True)``.

    With uniform weights MONAI's generalised Dice is
    ``1 - (2 sum_c tp_c + s) / (sum_c (sum p_c + sum g_c) + s)``, our global form. Only
    ``w_type="uniform"`` and ``batch=True`` match: the other weightings scale classes
    by ``1/|g_c|`` or ``1/|g_c|^2``, and ``batch=False`` computes one ratio per item.
    """
    logits, target = random_case(spatial, seed=6, classes=4)
    ours = DiceLoss(form="global", include_background=include_background, smooth=smooth)
    reference = monai.losses.GeneralizedDiceLoss(
        include_background=include_background,
        softmax=True,
        to_onehot_y=True,
        batch=True,
        w_type="uniform",
        smooth_nr=smooth,
        smooth_dr=smooth,
    )
    torch.testing.assert_close(
        ours(logits, target), reference(logits, target.unsqueeze(1)), atol=1e-5, rtol=0
    )


def test_dice_pools_the_batch_unlike_monai_per_item_default() -> None:
    """The batch pooling is what the ``batch=True`` above stands for: per item differs."""
    logits, target = random_case((6, 6), seed=7, batch=2)
    ours = DiceLoss(form="mean_class")(logits, target)
    per_item = monai.losses.DiceLoss(softmax=True, to_onehot_y=True, batch=False)(
        logits, target.unsqueeze(1)
    )
    assert abs(ours.item() - per_item.item()) > 1e-4


# --- the 12 losses of the loss study, by hand ------------------------------------------------

# Example C, shape (B, C, N) = (1, 3, 4): Example B's probabilities with the labels
# (0, 1, 0, 0), so class 0 is frequent (n_0 = 3), class 1 rare (n_1 = 1), class 2
# absent (n_2 = 0); N = 4 voxels.
#   p_0 = (1/2, 1/4, 1/4, 1/2)    g_0 = (1, 0, 1, 1)
#   p_1 = (1/4, 1/2, 1/4, 1/4)    g_1 = (0, 1, 0, 0)
#   p_2 = (1/4, 1/4, 1/2, 1/4)    g_2 = (0, 0, 0, 0)
# True-class probabilities p_{i,y_i} = (1/2, 1/2, 1/4, 1/2), so the voxel cross-entropies
# are (ln 2, ln 2, 2 ln 2, ln 2).
# Unweighted Dice sums:  I_0 = 1/2 + 1/4 + 1/2 = 5/4, D_0 = 3 + 3/2 = 9/2;
#                        I_1 = 1/2,                D_1 = 1 + 5/4 = 9/4;
#                        I_2 = 0,                  D_2 = 5/4.
# Signed distance maps (1D, pipeline convention: 0 on the inner boundary, deeper < 0,
# outside the distance to the structure; absent class = the diagonal, 4):
#   d_0 = (0, 1, 0, -1),  d_1 = (1, 0, 1, 2),  d_2 = (4, 4, 4, 4).
EXAMPLE_C_LOGITS = EXAMPLE_B_LOGITS
EXAMPLE_C_TARGET = torch.tensor([[0, 1, 0, 0]])
EXAMPLE_C_DISTANCE = torch.tensor(
    [[[0.0, 1.0, 0.0, -1.0], [1.0, 0.0, 1.0, 2.0], [4.0, 4.0, 4.0, 4.0]]], dtype=torch.float64
)
# DTM with sigma = 1, w0 = 1: w = 1 + exp(-d^2 / 2) -> 2 at d = 0, A at |d| = 1, Bw at 2,
# Cw at 4.
A = 1 + math.exp(-1 / 2)
BW = 1 + math.exp(-2)
CW = 1 + math.exp(-8)
DTM_1 = {"sigma": 1.0, "boundary_weight": 1.0}
# DPT: Phi = 1 - |d| / max|d| per side of each class:
#   class 0: inside |d| = (0, 0, 1) at voxels 0, 2, 3 -> Phi 1, 1, 0; outside voxel 1: d = 1
#            = max -> 0.                     Phi_0 = (1, 0, 1, 0)
#   class 1: inside voxel 1: d = 0 -> 1; outside (1, 1, 2) -> 1/2, 1/2, 0.
#                                            Phi_1 = (1/2, 1, 1/2, 0)
#   class 2: 4 everywhere = max -> 0.        Phi_2 = (0, 0, 0, 0)

STUDY_BY_HAND: list[tuple[str, str, dict[str, object], float]] = [
    # CE none: (ln 2 + ln 2 + 2 ln 2 + ln 2) / 4
    ("ce", "none", {}, 5 * LN2 / 4),
    # CE inverse: w_c = N / n_c = (4/3, 4/1, absent -> max 4):
    #   (1/4) [4/3 (ln 2 + 2 ln 2 + ln 2) + 4 ln 2] = (1/4)(16/3 + 4) ln 2
    #   (= the sum of the class means (4/3) ln 2 + ln 2)
    ("ce", "inverse", {}, 7 * LN2 / 3),
    # CE median: f = (0.6, 0.3, 0.1), median 0.3 -> w = (1/2, 1, 3):
    #   (1/4) [1/2 (4 ln 2) + 1 ln 2]
    ("ce", "median", {"class_frequencies": FREQUENCIES}, 3 * LN2 / 4),
    # CE focal gamma 2: (1 - p_y)^2 = (1/4, 1/4, 9/16, 1/4):
    #   (1/4) [1/4 ln 2 + 1/4 ln 2 + 9/16 2 ln 2 + 1/4 ln 2] = (1/4)(3/4 + 9/8) ln 2
    ("ce", "focal", {}, 15 * LN2 / 32),
    # CE focal gamma 1: (1/4) [1/2 ln 2 + 1/2 ln 2 + 3/4 2 ln 2 + 1/2 ln 2] = (1/4)(3 ln 2)
    ("ce", "focal", {"gamma": 1.0}, 3 * LN2 / 4),
    # CE dtm: true-class distances (0, 0, 0, -1) -> w = (2, 2, 2, A):
    #   (1/4) [2 ln 2 + 2 ln 2 + 2 (2 ln 2) + A ln 2] = (1/4)(8 + A) ln 2
    ("ce", "dtm", DTM_1, (8 + A) * LN2 / 4),
    # CE dpt: true-class Phi (Phi_0[0], Phi_1[1], Phi_0[2], Phi_0[3]) = (1, 1, 1, 0)
    #   -> w = (2, 2, 2, 1): (1/4) [2 ln 2 + 2 ln 2 + 2 (2 ln 2) + ln 2] = 9 ln 2 / 4,
    #   not the unweighted 5 ln 2 / 4 (the copied distance-penalised CE's mistake).
    ("ce", "dpt", {}, 9 * LN2 / 4),
    # Dice none, global: 1 - 2 (5/4 + 1/2 + 0) / (9/2 + 9/4 + 5/4) = 1 - (7/2) / 8
    ("dice", "none", {"smooth": 0.0}, 9 / 16),
    # Dice inverse: w_c = 1 / n_c^2 = (1/9, 1, absent -> max 1):
    #   1 - 2 (5/36 + 1/2) / (1/2 + 9/4 + 5/4) = 1 - (23/18) / 4 = 1 - 23/72
    ("dice", "inverse", {"smooth": 0.0}, 49 / 72),
    # Dice inverse without background: w = (1, absent -> 1): 1 - 2 (1/2) / (9/4 + 5/4)
    ("dice", "inverse", {"smooth": 0.0, "include_background": False}, 5 / 7),
    # Dice median, w = (1/2, 1, 3):
    #   1 - 2 (5/8 + 1/2) / (9/4 + 9/4 + 15/4) = 1 - (9/4) / (33/4) = 1 - 3/11
    ("dice", "median", {"smooth": 0.0, "class_frequencies": FREQUENCIES}, 8 / 11),
    # Dice median, mean_class: Dice_c = (5/9, 4/9, 0), weighted mean
    #   (1/2 5/9 + 4/9 + 0) / (1/2 + 1 + 3) = (13/18) / (9/2) = 13/81
    (
        "dice",
        "median",
        {"smooth": 0.0, "form": "mean_class", "class_frequencies": FREQUENCIES},
        68 / 81,
    ),
    # Dice focal gamma 2: voxel weights v = (1/4, 1/4, 9/16, 1/4) in both sums (x 64):
    #   64 I_0 = 8 + 9 + 8 = 25        64 D_0 = 24 + 4 + 45 + 24 = 97
    #   64 I_1 = 8                     64 D_1 = 4 + 24 + 9 + 4 = 41
    #   64 I_2 = 0                     64 D_2 = 4 + 4 + 18 + 4 = 30
    #   1 - 2 (25 + 8) / (97 + 41 + 30) = 1 - 66/168
    ("dice", "focal", {"smooth": 0.0}, 17 / 28),
    # mean_class: 1 - (50/97 + 16/41 + 0) / 3
    ("dice", "focal", {"smooth": 0.0, "form": "mean_class"}, 1 - (50 / 97 + 16 / 41) / 3),
    # Dice dtm, w_ic = 1 + exp(-d_ic^2 / 2):
    #   class 0: w = (2, A, 2, A): I_0 = 2/2 + 2/4 + A/2, D_0 = 2(3/2) + A/4 + 2(5/4) + A(3/2)
    #   class 1: w = (A, 2, A, Bw): I_1 = 2/2, D_1 = A/4 + 2(3/2) + A/4 + Bw/4
    #   class 2: w = Cw:          I_2 = 0,   D_2 = Cw (5/4)
    #   1 - 2 (5/2 + A/2) / (17/2 + 9A/4 + Bw/4 + 5Cw/4)
    (
        "dice",
        "dtm",
        {"smooth": 0.0, **DTM_1},
        1 - 2 * (5 / 2 + A / 2) / (17 / 2 + 9 * A / 4 + BW / 4 + 5 * CW / 4),
    ),
    # Dice dpt, w = 1 + Phi: class 0 (2, 1, 2, 1), class 1 (3/2, 2, 3/2, 1), class 2 (1, ...):
    #   I_0 = 2/2 + 2/4 + 1/2 = 2       D_0 = 2(3/2) + 1/4 + 2(5/4) + 3/2 = 29/4
    #   I_1 = 2/2 = 1                   D_1 = 3/8 + 3 + 3/8 + 1/4 = 4
    #   I_2 = 0                         D_2 = 5/4
    #   1 - 2 (2 + 1) / (29/4 + 4 + 5/4) = 1 - 6 / (25/2)
    ("dice", "dpt", {"smooth": 0.0}, 13 / 25),
    # mean_class: 1 - (2 2 / (29/4) + 2 / 4 + 0) / 3
    ("dice", "dpt", {"smooth": 0.0, "form": "mean_class"}, 1 - (16 / 29 + 1 / 2) / 3),
    # dice_ce inverse: the Dice term with 1/n_c^2 plus the CE term with N/n_c
    ("dice_ce", "inverse", {"smooth": 0.0}, 49 / 72 + 7 * LN2 / 3),
]


@pytest.mark.parametrize(
    ("base", "weighting", "options", "expected"),
    STUDY_BY_HAND,
    ids=[config_id(case[:3]) for case in STUDY_BY_HAND],
)
def test_study_losses_by_hand(
    base: str, weighting: str, options: dict[str, object], expected: float
) -> None:
    loss = build_loss(base, weighting, **options)
    value = loss(EXAMPLE_C_LOGITS, EXAMPLE_C_TARGET, distance=EXAMPLE_C_DISTANCE)
    assert value.item() == pytest.approx(expected, abs=1e-12)


def test_inverse_cross_entropy_by_hand_with_a_mask() -> None:
    # Voxel 3 unlabelled: labels (0, 1, 0), N = 3, n = (2, 1, 0) -> w = (3/2, 3, max 3):
    #   (1/3) [3/2 (ln 2 + 2 ln 2) + 3 ln 2] = (1/3)(9/2 + 3) ln 2
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    value = build_loss("ce", "inverse")(EXAMPLE_C_LOGITS, EXAMPLE_C_TARGET, mask)
    assert value.item() == pytest.approx(5 * LN2 / 2, abs=1e-12)


def test_distance_penalty_map_by_hand() -> None:
    # Phi_0 = (1, 0, 1, 0), Phi_1 = (1/2, 1, 1/2, 0), Phi_2 = 0 (see Example C)
    expected = torch.tensor(
        [[[1.0, 0.0, 1.0, 0.0], [0.5, 1.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0]]], dtype=torch.float64
    )
    torch.testing.assert_close(distance_penalty(EXAMPLE_C_DISTANCE), expected)
    # +inf (an absent class given as infinitely far) gives 0, never NaN; items are apart
    far = torch.tensor([[[math.inf, -2.0, 0.0, 1.0]], [[-4.0, -1.0, 3.0, 3.0]]])
    expected = torch.tensor([[[0.0, 0.0, 1.0, 0.0]], [[0.0, 0.75, 0.0, 0.0]]])
    torch.testing.assert_close(distance_penalty(far), expected)


# --- the 12 losses against MONAI and torch ---------------------------------------------------


@pytest.mark.parametrize("spatial", SPATIAL_SHAPES)
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("smooth", [1e-5, 1.0])
@pytest.mark.parametrize("classes", [4, 5])
def test_inverse_dice_equals_monai_generalized_dice_square(
    spatial: tuple[int, ...], include_background: bool, smooth: float, classes: int
) -> None:
    """``dice`` + ``inverse`` equals MONAI ``GeneralizedDiceLoss(w_type="square", batch=True)``.

    Both compute ``1 - (2 sum_c w_c tp_c + s) / (sum_c w_c (sum p_c + sum g_c) + s)`` with
    ``w_c = 1 / (sum g_c)^2`` over the batch, and give an absent class the largest
    finite weight. ``batch=True`` is needed (ours pools the batch); with 5 classes and
    labels drawn from 4, class 4 is absent, so the absent-class rule is compared too.
    Values and gradients match.
    """
    logits, target = random_case(spatial, seed=21, classes=classes)
    target = target.clamp_max(3)
    ours = build_loss("dice", "inverse", include_background=include_background, smooth=smooth)
    reference = monai.losses.GeneralizedDiceLoss(
        include_background=include_background,
        softmax=True,
        to_onehot_y=True,
        batch=True,
        w_type="square",
        smooth_nr=smooth,
        smooth_dr=smooth,
    )
    value, grad = value_and_grad(ours, logits, target)
    reference_value, reference_grad = value_and_grad(
        lambda x, y, *_: reference(x, y.unsqueeze(1)), logits, target
    )
    torch.testing.assert_close(value, reference_value, atol=1e-5, rtol=0)
    torch.testing.assert_close(grad, reference_grad, atol=1e-5, rtol=0)


@pytest.mark.parametrize("spatial", SPATIAL_SHAPES)
@pytest.mark.parametrize("gamma", [0.5, 2.0, 3.0])
@pytest.mark.parametrize("classes", [2, 4])
def test_focal_cross_entropy_equals_monai_softmax_focal_loss(
    spatial: tuple[int, ...], gamma: float, classes: int
) -> None:
    """``ce`` + ``focal`` equals MONAI ``FocalLoss(use_softmax=True, alpha=None)``, rescaled.

    MONAI's softmax focal loss is the element-wise ``-(1 - p_ic)^gamma g_ic log p_ic`` on
    ``(B, C, *spatial)`` (one-hot ``g``, so only the true class is nonzero), in float32.
    With ``reduction="mean"`` it divides by all ``B C N`` elements, ours by the ``B N``
    voxels: ours = ``C`` x MONAI's mean. With ``reduction="sum"`` it averages over space
    per item and class and sums the rest: ours = MONAI's sum / ``B`` (equal-size items).
    Settings: ``to_onehot_y=True``, ``include_background=True`` (MONAI's ``False`` drops
    the background channel before its softmax), same ``gamma``, no ``alpha``/``weight``,
    no mask. Values and gradients match (both keep the focal factor in the graph).
    """
    logits, target = random_case(spatial, seed=22, classes=classes)
    ours = build_loss("ce", "focal", gamma=gamma)
    value, grad = value_and_grad(ours, logits, target)
    for reduction, scale in (("mean", classes), ("sum", 1 / len(target))):
        reference = monai.losses.FocalLoss(
            include_background=True,
            to_onehot_y=True,
            gamma=gamma,
            use_softmax=True,
            reduction=reduction,
        )
        reference_value, reference_grad = value_and_grad(
            lambda x, y, *_, loss=reference, k=scale: k * loss(x, y.unsqueeze(1)),
            logits.float(),
            target,
        )
        torch.testing.assert_close(value.float(), reference_value, atol=1e-5, rtol=0)
        torch.testing.assert_close(grad.float(), reference_grad, atol=1e-5, rtol=0)


@pytest.mark.parametrize("spatial", SPATIAL_SHAPES)
@pytest.mark.parametrize("weighting", ["inverse", "median"])
def test_class_weighted_cross_entropy_equals_torch_with_weight(
    spatial: tuple[int, ...], weighting: str
) -> None:
    """``-(1/N) sum_i w_{y_i} log p_{i,y_i}`` is torch's weighted CE averaged over voxels.

    torch's own ``reduction="mean"`` divides by ``sum_i w_{y_i}`` instead, so the
    comparison takes ``reduction="none"`` and averages. ``inverse`` uses ``N / n_c``.
    """
    logits, target = random_case(spatial, seed=23, classes=4)
    assert len(target.unique()) == 4
    frequencies = [0.7, 0.2, 0.06, 0.04]
    if weighting == "inverse":
        counts = torch.bincount(target.flatten(), minlength=4).double()
        weight = target.numel() / counts
    else:  # the median of four values is the mean of the middle two
        weight = (0.2 + 0.06) / 2 / torch.tensor(frequencies, dtype=torch.float64)
    options = {"class_frequencies": frequencies} if weighting == "median" else {}
    ours = build_loss("ce", weighting, **options)
    reference = F.cross_entropy(logits, target, weight=weight, reduction="none").mean()
    torch.testing.assert_close(ours(logits, target), reference, atol=1e-10, rtol=0)


# --- properties of the weightings ---------------------------------------------------------------

DICE_FORMS = [
    {"form": "global"},
    {"form": "mean_class"},
    {"form": "mean_class", "include_background": False},
]
BASE_OPTIONS = [("ce", {}), *[("dice", form) for form in DICE_FORMS]]
BASE_IDS = [config_id((base, "", options)) for base, options in BASE_OPTIONS]


def _case_with_distance(
    spatial: tuple[int, ...] = (6, 5), seed: int = 24
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    logits, target = random_case(spatial, seed=seed)
    return logits, target, signed_distance(target, 3)


@pytest.mark.parametrize(("base", "options"), BASE_OPTIONS, ids=BASE_IDS)
@pytest.mark.parametrize(
    ("weighting", "neutral"),
    [
        ("focal", {"gamma": 0.0}),  # (1 - p)^0 = 1
        ("median", {"class_frequencies": [0.2, 0.2, 0.2]}),  # median / f = 1
        ("median", {"class_frequencies": [7, 7, 7]}),  # counts work as well as shares
        ("dtm", {"boundary_weight": 0.0}),  # 1 + 0 exp(...) = 1
    ],
)
def test_neutral_weighting_options_give_the_unweighted_loss(
    base: str, options: dict[str, object], weighting: str, neutral: dict[str, object]
) -> None:
    """Focal with gamma 0 is plain CE/Dice; median with equal frequencies is unweighted."""
    logits, target, distance = _case_with_distance()
    plain = value_and_grad(build_loss(base, **options), logits, target)
    weighted = value_and_grad(
        build_loss(base, weighting, **neutral, **options), logits, target, None, distance
    )
    torch.testing.assert_close(weighted, plain, atol=1e-12, rtol=0)


@pytest.mark.parametrize(("base", "options"), BASE_OPTIONS, ids=BASE_IDS)
def test_zero_distance_penalty_map_gives_the_base_loss(
    base: str, options: dict[str, object]
) -> None:
    """With ``|d|`` constant on each side of every structure, ``Φ = 0`` and DPT is the base."""
    logits, target = random_case((6, 5), seed=25)
    one_hot = F.one_hot(target, 3).movedim(-1, 1).bool()
    distance = torch.where(one_hot, -3.0, 3.0).double()
    assert torch.all(distance_penalty(distance) == 0)
    plain = value_and_grad(build_loss(base, **options), logits, target)
    penalised = value_and_grad(build_loss(base, "dpt", **options), logits, target, None, distance)
    torch.testing.assert_close(penalised, plain, atol=1e-12, rtol=0)


@pytest.mark.parametrize(("base", "options"), BASE_OPTIONS, ids=BASE_IDS)
@pytest.mark.parametrize("weighting", ["inverse", "median", "focal", "dtm", "dpt"])
def test_every_weighting_changes_the_value(
    base: str, options: dict[str, object], weighting: str
) -> None:
    """Weights must reach the value: the copied distance-penalised CE returns the plain mean."""
    logits, target, distance = _case_with_distance()
    plain = build_loss(base, **options)(logits, target)
    weighting_options = WEIGHTING_OPTIONS.get(weighting, {})
    weighted = build_loss(base, weighting, **weighting_options, **options)
    assert abs(weighted(logits, target, distance=distance).item() - plain.item()) > 1e-3


@pytest.mark.parametrize("spatial", SPATIAL_SHAPES)
def test_distance_penalised_cross_entropy_is_the_penalised_mean(spatial: tuple[int, ...]) -> None:
    """DPT-CE is ``mean_i (1 + Φ_{i,y_i}) CE_i``, not the unweighted ``mean_i CE_i``."""
    logits, target = random_case(spatial, seed=26)
    distance = signed_distance(target, 3)
    voxel_ce = F.cross_entropy(logits, target, reduction="none")
    penalty = distance_penalty(distance).gather(1, target.unsqueeze(1)).squeeze(1)
    expected = ((1 + penalty) * voxel_ce).mean()
    value = build_loss("ce", "dpt")(logits, target, distance=distance)
    torch.testing.assert_close(value, expected, atol=1e-12, rtol=0)
    assert value.item() > voxel_ce.mean().item() + 1e-3


@pytest.mark.parametrize("spatial", SPATIAL_SHAPES)
def test_distance_transform_cross_entropy_emphasises_boundaries(spatial: tuple[int, ...]) -> None:
    """DTM-CE is ``mean_i (1 + w0 exp(-d_{i,y_i}^2 / 2 sigma^2)) CE_i``."""
    logits, target = random_case(spatial, seed=27)
    distance = signed_distance(target, 3)
    voxel_ce = F.cross_entropy(logits, target, reduction="none")
    true_distance = distance.gather(1, target.unsqueeze(1)).squeeze(1)
    expected = ((1 + 4.0 * torch.exp(-(true_distance**2) / 2 / 1.5**2)) * voxel_ce).mean()
    value = build_loss("ce", "dtm", sigma=1.5, boundary_weight=4.0)(
        logits, target, distance=distance
    )
    torch.testing.assert_close(value, expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("form", ["global", "mean_class"])
def test_focal_dice_uses_detached_true_class_weights(form: str) -> None:
    """Focal Dice = Dice with voxel weights ``(1 - p_{i,y_i})^gamma`` held constant."""
    logits, target = random_case((5, 6), seed=28)
    gamma = 1.5

    def by_formula(x: torch.Tensor, y: torch.Tensor, *_: object) -> torch.Tensor:
        p = x.softmax(1)
        g = F.one_hot(y, 3).movedim(-1, 1).double()
        v = (1 - p.gather(1, y.unsqueeze(1))).pow(gamma).detach()
        intersection = (v * g * p).sum(dim=(0, 2, 3))
        denominator = (v * (g + p)).sum(dim=(0, 2, 3))
        if form == "global":
            return 1 - (2 * intersection.sum() + 1e-5) / (denominator.sum() + 1e-5)
        return 1 - ((2 * intersection + 1e-5) / (denominator + 1e-5)).mean()

    ours = value_and_grad(build_loss("dice", "focal", gamma=gamma, form=form), logits, target)
    torch.testing.assert_close(ours, value_and_grad(by_formula, logits, target), atol=1e-12, rtol=0)


@pytest.mark.parametrize("weighting", list(WEIGHTINGS))
def test_dice_ce_applies_the_weighting_to_both_terms(weighting: str) -> None:
    logits, target, distance = _case_with_distance()
    options = WEIGHTING_OPTIONS.get(weighting, {})
    total = build_loss("dice_ce", weighting, dice_weight=0.5, ce_weight=2.0, **options)
    dice = build_loss("dice", weighting, **options)(logits, target, distance=distance)
    cross_entropy = build_loss("ce", weighting, **options)(logits, target, distance=distance)
    torch.testing.assert_close(
        total(logits, target, distance=distance), 0.5 * dice + 2.0 * cross_entropy
    )


def test_median_weights_follow_the_module_to_another_dtype() -> None:
    loss = build_loss("dice", "median", class_frequencies=FREQUENCIES).float()
    logits, target = random_case((4, 4))
    value = loss(logits.float(), target)
    assert value.dtype == torch.float32
    assert torch.isfinite(value)


# --- masks: every configuration, the 12 study losses included ----------------------------------


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("spatial", SPATIAL_SHAPES)
def test_masked_voxels_change_nothing_and_get_no_gradient(
    config: tuple[str, str, dict[str, object]], spatial: tuple[int, ...]
) -> None:
    loss = make_loss(config)
    logits, target = random_case(spatial, seed=8)
    distance = signed_distance(target, 3)
    generator = torch.Generator().manual_seed(9)
    mask = (torch.rand(target.shape, generator=generator) > 0.5).double()
    assert 0 < mask.sum() < mask.numel()
    unlabelled = (mask == 0).unsqueeze(1).expand_as(logits)

    # Change logits, targets and distance maps only where the mask is 0.
    other_logits = torch.where(unlabelled, 10 * torch.randn_like(logits) - 3, logits)
    other_target = torch.where(mask == 0, (target + 1) % logits.shape[1], target)
    other_distance = torch.where(unlabelled, 50 * torch.randn_like(distance), distance)

    value, grad = value_and_grad(loss, logits, target, mask, distance)
    other_value, other_grad = value_and_grad(loss, other_logits, other_target, mask, other_distance)

    torch.testing.assert_close(other_value, value, atol=1e-10, rtol=0)
    torch.testing.assert_close(other_grad, grad, atol=1e-10, rtol=0)
    assert torch.all(grad[unlabelled] == 0)
    assert grad[~unlabelled].abs().sum() > 0


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_masked_value_equals_value_on_the_labelled_voxels_alone(
    config: tuple[str, str, dict[str, object]],
) -> None:
    """Masking the second half of a 1D sequence equals cropping it away."""
    loss = make_loss(config)
    logits, target = random_case((10,), seed=10)
    distance = signed_distance(target, 3)
    mask = torch.zeros(target.shape, dtype=torch.float64)
    mask[:, :6] = 1
    masked = loss(logits, target, mask, distance)
    cropped = loss(logits[..., :6], target[..., :6], None, distance[..., :6])
    torch.testing.assert_close(masked, cropped, atol=1e-10, rtol=0)


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_all_ones_mask_equals_no_mask(config: tuple[str, str, dict[str, object]]) -> None:
    loss = make_loss(config)
    logits, target = random_case((4, 5), seed=11)
    distance = signed_distance(target, 3)
    ones = torch.ones(target.shape, dtype=torch.bool)
    torch.testing.assert_close(
        loss(logits, target, ones, distance), loss(logits, target, None, distance), atol=0, rtol=0
    )


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_fractional_mask_weighs_voxels_like_repeating_them(
    config: tuple[str, str, dict[str, object]],
) -> None:
    """Mask 2 on a voxel of a (1, 5) case = that voxel twice in a (1, 6) case."""
    loss = make_loss(config)
    logits, target = random_case((5,), batch=1, seed=29)
    distance = signed_distance(target, 3)
    mask = torch.tensor([[1.0, 2.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
    repeat = torch.tensor([0, 1, 1, 2, 3, 4])
    weighted = loss(logits, target, mask, distance)
    repeated = loss(logits[..., repeat], target[..., repeat], None, distance[..., repeat])
    torch.testing.assert_close(weighted, repeated, atol=1e-10, rtol=0)


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("spatial", SPATIAL_SHAPES)
def test_empty_mask_gives_zero_loss_and_zero_gradient(
    config: tuple[str, str, dict[str, object]], spatial: tuple[int, ...]
) -> None:
    loss = make_loss(config)
    logits, target = random_case(spatial, seed=12)
    value, grad = value_and_grad(
        loss, logits, target, torch.zeros(target.shape), signed_distance(target, 3)
    )
    assert torch.isfinite(value)
    assert value.item() == pytest.approx(0.0, abs=1e-12)
    assert torch.all(grad == 0)


# --- absent classes and perfect predictions ---------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("present", [(0, 1), (0,), (1, 2)])
def test_class_absent_from_batch_gives_finite_value_and_gradient(
    config: tuple[str, str, dict[str, object]], present: tuple[int, ...]
) -> None:
    loss = make_loss(config)
    logits, _ = random_case((4, 3, 2), seed=13, classes=3)
    choice = torch.randint(
        0, len(present), (2, 4, 3, 2), generator=torch.Generator().manual_seed(1)
    )
    target = torch.tensor(present)[choice]
    value, grad = value_and_grad(loss, logits, target, None, signed_distance(target, 3))
    assert torch.isfinite(value)
    assert value.item() >= 0
    assert torch.isfinite(grad).all()
    assert grad.abs().sum() > 0


def confident_logits(target: torch.Tensor, classes: int, scale: float) -> torch.Tensor:
    """Logits ``scale`` on the true class and 0 elsewhere."""
    return scale * F.one_hot(target, classes).movedim(-1, 1).double()


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("spatial", SPATIAL_SHAPES)
def test_perfect_prediction_gives_zero_loss(
    config: tuple[str, str, dict[str, object]], spatial: tuple[int, ...]
) -> None:
    _, target = random_case(spatial, seed=14, classes=3)
    assert set(target.unique().tolist()) == {0, 1, 2}
    loss = make_loss(config)
    value = loss(confident_logits(target, 3, 30.0), target, None, signed_distance(target, 3))
    assert value.item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_perfect_prediction_beats_a_wrong_one(config: tuple[str, str, dict[str, object]]) -> None:
    _, target = random_case((5, 5), seed=15, classes=3)
    distance = signed_distance(target, 3)
    loss = make_loss(config)
    perfect = loss(confident_logits(target, 3, 30.0), target, None, distance)
    wrong = loss(confident_logits((target + 1) % 3, 3, 30.0), target, None, distance)
    assert wrong.item() > perfect.item() + 0.5


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("scale", [30.0, 200.0])
def test_saturated_float32_softmax_gives_finite_value_and_gradient(
    config: tuple[str, str, dict[str, object]], scale: float
) -> None:
    """In float32 a confident softmax is exactly 1: no 0 * inf in the focal gradient."""
    loss = make_loss(config)
    _, target = random_case((4, 5), seed=16)
    logits = confident_logits(target, 3, scale).float()
    logits[0, :, 0, 0] = torch.tensor([0.0, scale, 0.0])  # one wrong voxel
    value, grad = value_and_grad(loss, logits, target, None, signed_distance(target, 3).float())
    assert torch.isfinite(value)
    assert torch.isfinite(grad).all()


DICE_CONFIGS = [config for config in CONFIGS if config[0] == "dice"]


@pytest.mark.parametrize("config", DICE_CONFIGS, ids=[config_id(c) for c in DICE_CONFIGS])
def test_dice_loss_is_between_zero_and_one(config: tuple[str, str, dict[str, object]]) -> None:
    loss = make_loss(config)
    for seed in range(5):
        logits, target = random_case((6, 4), seed=seed)
        value = loss(5 * logits, target, None, signed_distance(target, 3)).item()
        assert 0.0 <= value <= 1.0


# --- shape errors -----------------------------------------------------------------------------


def _shape_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    logits = torch.zeros(2, 3, 4, 5)
    target = torch.zeros(2, 4, 5, dtype=torch.long)
    return [
        ("logits (B, C)", torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), None),
        ("target with channel axis", logits, target.unsqueeze(1), None),
        ("target spatial mismatch", logits, torch.zeros(2, 4, 6, dtype=torch.long), None),
        ("target batch mismatch", logits, torch.zeros(1, 4, 5, dtype=torch.long), None),
        ("mask with channel axis", logits, target, torch.ones(2, 1, 4, 5)),
        ("mask spatial mismatch", logits, target, torch.ones(2, 5, 4)),
    ]


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize(
    ("case", "logits", "target", "mask"), _shape_cases(), ids=[c[0] for c in _shape_cases()]
)
def test_shape_errors_raise_value_error(
    config: tuple[str, str, dict[str, object]],
    case: str,
    logits: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None,
) -> None:
    with pytest.raises(ValueError, match="shape"):
        make_loss(config)(logits, target, mask, torch.zeros(logits.shape))


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_distance_of_the_wrong_shape_is_rejected_by_every_loss(
    config: tuple[str, str, dict[str, object]],
) -> None:
    logits, target = random_case((4, 5))
    with pytest.raises(ValueError, match="distance shape"):
        make_loss(config)(logits, target, None, torch.zeros(2, 3, 5, 4))


# --- non-finite logits and placeholder labels -----------------------------------------------


def test_cross_entropy_with_minus_inf_logit_on_wrong_class_matches_torch() -> None:
    logits = torch.zeros(1, 2, 2, 1)
    logits[0, 1, 0, 0] = float("-inf")  # class 1 ruled out at voxel 1, whose label is 0
    target = torch.zeros(1, 2, 1, dtype=torch.long)
    reference = F.cross_entropy(logits, target)
    assert torch.isfinite(reference)
    torch.testing.assert_close(CrossEntropyLoss()(logits, target), reference)


POISON_MASK = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]], dtype=torch.float64)


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_non_finite_inputs_on_masked_voxels_change_nothing(
    config: tuple[str, str, dict[str, object]],
) -> None:
    """NaN/inf logits and distances where unlabelled: same value, finite same gradient."""
    loss = make_loss(config)
    logits, target = random_case((4,), seed=16)
    distance = signed_distance(target, 3)
    poisoned, poisoned_distance = logits.clone(), distance.clone()
    poisoned[..., 3] = float("nan")
    poisoned[1, 0, 3] = float("inf")
    poisoned_distance[..., 3] = float("nan")
    value, grad = value_and_grad(loss, logits, target, POISON_MASK, distance)
    poisoned_value, poisoned_grad = value_and_grad(
        loss, poisoned, target, POISON_MASK, poisoned_distance
    )
    torch.testing.assert_close(poisoned_value, value)
    torch.testing.assert_close(poisoned_grad, grad)
    assert torch.isfinite(poisoned_grad).all()


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_placeholder_labels_on_masked_voxels_are_ignored(
    config: tuple[str, str, dict[str, object]],
) -> None:
    """An 'ignore' value such as 255 may stand in the target wherever the mask is 0."""
    loss = make_loss(config)
    logits, target = random_case((4,), seed=17)
    distance = signed_distance(target, 3)
    placeholder = target.clone()
    placeholder[POISON_MASK == 0] = 255
    torch.testing.assert_close(
        loss(logits, placeholder, POISON_MASK, distance),
        loss(logits, target, POISON_MASK, distance),
    )
