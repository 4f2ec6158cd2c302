"""Tests for the datamodules.phantom package: the names the rest of the project imports."""

from __future__ import annotations

import datamodules.phantom as phantom
from datamodules.phantom import anatomy, contrast, geometry, writer

# Every name imported from datamodules.phantom elsewhere (experiments, benchmarks, tests).
USED_ELSEWHERE = (
    "CHANNELS",
    "CLASS_NAMES",
    "VESSEL_LABEL",
    "generate_subject",
    "phantom_affine",
    "write_phantom",
)


def test_package_re_exports_its_public_api() -> None:
    assert set(USED_ELSEWHERE) <= set(phantom.__all__)
    for name in phantom.__all__:
        assert hasattr(phantom, name), name


def test_re_exports_are_the_modules_objects() -> None:
    assert phantom.CHANNELS is contrast.CHANNELS
    assert phantom.CLASS_NAMES is anatomy.CLASS_NAMES
    assert phantom.VESSEL_LABEL is anatomy.VESSEL_LABEL
    assert phantom.DEFAULT_SHAPE is geometry.DEFAULT_SHAPE
    assert phantom.phantom_affine is geometry.phantom_affine
    assert phantom.generate_subject is writer.generate_subject
    assert phantom.write_phantom is writer.write_phantom
    assert phantom.DESCRIPTION.channels == phantom.CHANNELS
