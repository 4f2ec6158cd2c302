"""Tests for datamodules.phantom.distractors: brain-like blobs in fluid outside the brain, off by
default."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from datamodules.dataset import load_description
from datamodules.phantom.anatomy import (
    ANATOMY,
    CLASS_NAMES,
    DISTRACTORS,
    VARIABILITY,
    VESSEL_LABEL,
    Tissue,
)
from datamodules.phantom.contrast import CHANNELS, CISTERNOGRAPHY, _jittered_lookup
from datamodules.phantom.distractors import (
    HOST_TISSUES,
    _sample_blob,
    distractor_mask,
    distractor_rng,
)
from datamodules.phantom.geometry import DEFAULT_SHAPE, DEFAULT_SPACING, subject_coordinates
from datamodules.phantom.vessels import VesselField
from datamodules.phantom.writer import DESCRIPTION, DISTRACTOR_KEY, generate_subject, write_phantom
from experiments.cli import main

COUNT = 6
# Radius range (mm) of a small gyrus, which the longest semi-axis of every blob keeps to.
GYRUS_RADIUS_MM = (6.0, 15.0)
SMALL = (48, 48, 32)
SMALL_SPACING = (4.0, 4.0, 4.0)
FILES = (*CHANNELS, "label")


@pytest.fixture(scope="module")
def plain() -> dict[str, np.ndarray]:
    """Subject 0 of seed 0 at the default size, without distractors."""
    return generate_subject(np.random.default_rng([0, 0]))


@pytest.fixture(scope="module")
def distracted() -> dict[str, np.ndarray]:
    """The same subject with `COUNT` distractors."""
    return generate_subject(np.random.default_rng([0, 0]), distractors=COUNT)


def test_blobs_are_drawn_the_size_of_a_small_gyrus() -> None:
    coords = [np.zeros(8, dtype=np.float32)] * 3
    depth = np.full(8, 100.0)  # room for any blob
    rng = np.random.default_rng(0)
    blobs = [_sample_blob(rng, coords, depth, DISTRACTORS) for _ in range(200)]
    longest = np.array([max(blob.semi_axes) for blob in blobs])
    shortest = np.array([min(blob.semi_axes) for blob in blobs])
    low, high = GYRUS_RADIUS_MM
    assert low <= longest.min() and longest.max() <= high
    assert longest.max() - longest.min() > 0.8 * (high - low)  # spread over the range
    assert (shortest >= DISTRACTORS.aspect[0] * longest - 1e-9).all()


def test_count_and_size_of_the_blobs(distracted: dict[str, np.ndarray]) -> None:
    """`COUNT` separate blobs as large as drawn, give or take the subject's deformation."""
    blobs, count = ndimage.label(distracted[DISTRACTOR_KEY])
    assert count == COUNT
    volumes = np.bincount(blobs.ravel())[1:] * np.prod(DEFAULT_SPACING)
    radii = (3 * volumes / (4 * np.pi)) ** (1 / 3)  # of the sphere of equal volume
    low, high = GYRUS_RADIUS_MM
    assert (radii >= 0.5 * low).all(), radii
    assert (radii <= 1.1 * high).all(), radii


def test_distractors_are_labelled_background(
    plain: dict[str, np.ndarray], distracted: dict[str, np.ndarray]
) -> None:
    assert (distracted["label"][distracted[DISTRACTOR_KEY]] == 0).all()
    np.testing.assert_array_equal(distracted["label"], plain["label"])


def test_distractors_lie_outside_the_brain_and_inside_the_head(
    distracted: dict[str, np.ndarray],
) -> None:
    blobs, label = distracted[DISTRACTOR_KEY], distracted["label"]
    brain = np.isin(label, [value for value in CLASS_NAMES if value != VESSEL_LABEL])
    brain_distance = ndimage.distance_transform_edt(~brain, sampling=DEFAULT_SPACING)
    assert brain_distance[blobs].min() > DISTRACTORS.brain_clearance_mm
    assert not ndimage.binary_dilation(blobs)[label == VESSEL_LABEL].any()
    # generate_subject draws the subject's coordinates first: redraw them to find the scalp.
    coords, _ = subject_coordinates(
        np.random.default_rng([0, 0]), DEFAULT_SHAPE, DEFAULT_SPACING, VARIABILITY
    )
    assert (ANATOMY.scalp.level(coords)[blobs] < 1).all()


@pytest.mark.parametrize("channel", CHANNELS)
def test_distractors_look_like_brain_tissue(
    distracted: dict[str, np.ndarray], channel: str
) -> None:
    """Inside each blob (past the blur of its edge) intensities lie in the cerebrum's range."""
    image = distracted[channel]
    low, high = np.percentile(image[distracted["label"] == 1], [5, 95])
    core = image[ndimage.binary_erosion(distracted[DISTRACTOR_KEY])]
    assert low <= np.median(core) <= high
    assert np.mean((core >= low) & (core <= high)) > 0.85


def test_each_blob_lies_in_a_sheath_of_fluid(distracted: dict[str, np.ndarray]) -> None:
    """The voxels around every blob have the CSF's signal: bright in cisternography, dark in
    the angiography, as the brain's own rim; without the sheath they are scalp and bone."""
    label = distracted["label"]
    # The CSF layer around the cerebrum, away from vessels: the rim a blob should look like.
    cerebrum = label == 1
    csf_rim = ndimage.binary_dilation(cerebrum, iterations=2) & ~cerebrum & (label == 0)
    blobs, count = ndimage.label(distracted[DISTRACTOR_KEY])
    for channel in CHANNELS:
        image = distracted[channel]
        rim = np.median(image[csf_rim])
        for index in range(1, count + 1):
            blob = blobs == index
            shell = ndimage.binary_dilation(blob) & ~blob
            around, core = np.median(image[shell]), np.median(image[blob])
            # On the CSF's side of the blob's own signal, and as far from it as the brain's rim.
            assert np.sign(around - core) == np.sign(rim - core), (channel, index)
            assert abs(around - core) > 0.5 * abs(rim - core), (channel, index, rim, around, core)


def test_sheaths_replace_only_free_scalp_and_bone() -> None:
    """On a made-up head: blobs and sheaths lie in scalp or bone, off vessels and apart."""
    shape, voxel_mm = (40, 40, 24), np.array([2.0, 2.0, 2.0])
    coords = np.meshgrid(*(np.arange(n) * 2.0 for n in shape), indexing="ij")
    tissue = np.full(shape, Tissue.SKULL, dtype=np.uint8)
    tissue[:, :10] = Tissue.SCALP
    tissue[:, 30:] = Tissue.CSF  # fluid and brain that no blob or sheath may take
    tissue[:, 34:] = Tissue.GREY_MATTER
    surface = np.full(shape, np.inf)
    surface[20] = -1.0  # a vessel through the middle of the bone
    vessels = VesselField(surface=surface, radius=np.ones(shape), sheath=surface)
    blobs, sheaths = distractor_mask(
        np.random.default_rng(0),
        coords,
        tissue,
        vessels,
        np.zeros(shape),
        count=4,
        voxel_mm=voxel_mm,
        shape=DISTRACTORS,
    )
    assert ndimage.label(blobs)[1] == 4
    assert sheaths.any() and not (blobs & sheaths).any()
    taken = blobs | sheaths
    assert np.isin(tissue[taken], HOST_TISSUES).all()
    assert (surface[taken] > DISTRACTORS.vessel_clearance_mm).all()
    # Every blob is wrapped: its outer neighbours are sheath (or the host's edge).
    shell = ndimage.binary_dilation(blobs) & ~blobs
    assert np.mean(sheaths[shell]) > 0.9


def test_the_rest_of_the_subject_is_unchanged(
    plain: dict[str, np.ndarray], distracted: dict[str, np.ndarray]
) -> None:
    """Beyond the blobs' sheaths and their blur both images are those of the subject without
    them."""
    # The sheath (4 mm, 2 voxels) and the blur of its edge (2 voxels).
    reach = 2 * (round(DISTRACTORS.sheath_mm / min(DEFAULT_SPACING)) + 2) + 1
    near = ndimage.binary_dilation(distracted[DISTRACTOR_KEY], np.ones((reach,) * 3, dtype=bool))
    for channel in CHANNELS:
        np.testing.assert_array_equal(distracted[channel][~near], plain[channel][~near])
        assert not np.array_equal(distracted[channel], plain[channel])


def test_distractors_repeat_per_seed() -> None:
    def blobs(seed: list[int]) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return generate_subject(rng, SMALL, SMALL_SPACING, distractors=3)[DISTRACTOR_KEY]

    drawn = blobs([0, 1])
    np.testing.assert_array_equal(drawn, blobs([0, 1]))
    assert ndimage.label(drawn)[1] == 3  # the coarse grid still has room for them


def test_distractor_stream_follows_the_subject_without_advancing_it() -> None:
    subject = np.random.default_rng([0, 1])
    draws = distractor_rng(subject).random(4)
    np.testing.assert_array_equal(subject.random(4), np.random.default_rng([0, 1]).random(4))
    np.testing.assert_array_equal(draws, distractor_rng(np.random.default_rng([0, 1])).random(4))
    assert not np.array_equal(draws, distractor_rng(np.random.default_rng([0, 2])).random(4))


# ----------------------------------------------------------------------------- off by default


def test_zero_distractors_is_the_default_subject(plain: dict[str, np.ndarray]) -> None:
    zero = generate_subject(np.random.default_rng([0, 0]), distractors=0)
    assert set(zero) == set(plain) == set(FILES)
    for name in FILES:
        np.testing.assert_array_equal(zero[name], plain[name])


def test_default_subject_draws_the_numbers_it_drew_before_distractors() -> None:
    """Pinned: Rician noise in an empty corner, whose draw comes after every other one."""
    subject = generate_subject(np.random.default_rng([0, 0]), SMALL, SMALL_SPACING)
    assert subject["label"][0, 0, 0] == 0
    np.testing.assert_allclose(
        subject["cisternography"][0, 0, :3], [0.02657296, 0.01032678, 0.02469756], rtol=1e-6
    )
    np.testing.assert_allclose(
        subject["angiography"][0, 0, :3], [0.02664977, 0.02066044, 0.01845649], rtol=1e-6
    )


def test_intensity_jitter_draws_only_the_head_tissues() -> None:
    """The distractor tissue follows grey matter's jitter rather than drawing its own."""
    table = _jittered_lookup(np.random.default_rng(5), CISTERNOGRAPHY.tissue, 0.04)
    head = np.array(list(CISTERNOGRAPHY.tissue.values())[:-1], dtype=np.float32)
    before = head * (1 + np.random.default_rng(5).normal(0.0, 0.04, len(head))).astype(np.float32)
    np.testing.assert_array_equal(table[:-1], before)


def test_cohort_with_zero_distractors_is_the_default_cohort(tmp_path: Path) -> None:
    default = write_phantom(tmp_path / "default", 2, seed=0, shape=SMALL, spacing=SMALL_SPACING)
    zero = write_phantom(
        tmp_path / "zero", 2, seed=0, shape=SMALL, spacing=SMALL_SPACING, distractors=0
    )
    files = sorted(p.relative_to(default.parent) for p in default.parent.rglob("*.*"))
    assert len(files) == 2 * len(FILES) + 2  # plus manifest.csv and dataset.yaml
    for relative in files:
        assert (zero.parent / relative).read_bytes() == (default.parent / relative).read_bytes()
    assert load_description(zero) == DESCRIPTION
    plain = generate_subject(np.random.default_rng([0, 1]), SMALL, SMALL_SPACING)
    for name in FILES:
        written = nib.load(zero.parent / "phantom_001" / f"{name}.nii.gz").dataobj
        np.testing.assert_array_equal(np.asarray(written), plain[name])


def test_cohort_description_names_the_distractors(tmp_path: Path) -> None:
    manifest = write_phantom(
        tmp_path, 1, seed=0, shape=(24, 24, 16), spacing=SMALL_SPACING, distractors=2
    )
    description = load_description(manifest)
    assert "2 distractors" in description.name
    assert description.class_map == DESCRIPTION.class_map


@pytest.mark.parametrize("distractors", [-1, 1.5, True])
def test_bad_distractor_count_is_rejected(distractors: object, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="distractors"):
        write_phantom(tmp_path, 1, shape=(16, 16, 16), distractors=distractors)
    assert not any(tmp_path.iterdir())


# ----------------------------------------------------------------------------- command line


def test_phantom_command_passes_distractors_through(in_tmp: Path, capsys) -> None:
    args = ["phantom", "--subjects", "1", "--out", "cohort", "--shape", "24", "24", "16"]
    assert main([*args, "--distractors", "3"]) == 0
    assert "3 distractors" in load_description(Path("cohort/manifest.csv")).name
    assert main([*args, "--distractors", "-1"]) == 2
    assert "--distractors must be at least 0, got -1" in capsys.readouterr().err
