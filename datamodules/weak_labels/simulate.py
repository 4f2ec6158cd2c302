"""Mode specs and the entry points: parse, resolve, sample, apply, simulate.

A mode's *parameters* ``sample`` a *draw* from a seeded generator; the draw's ``apply`` is
deterministic, so a recorded draw replays the same weak label (see `draws_to_records`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from datamodules.weak_labels._checks import checked_label, integer, labels, scalar
from datamodules.weak_labels.missing import MissingDraw, MissingStructures
from datamodules.weak_labels.noisy import NoisyBoundaries, NoisyDraw
from datamodules.weak_labels.sparse import SparseDraw, SparseSlices

WeakLabelMode = SparseSlices | NoisyBoundaries | MissingStructures
WeakLabelDraw = SparseDraw | NoisyDraw | MissingDraw
ModeSpec = WeakLabelMode | Mapping[str, Any] | str
MODES: dict[str, type[WeakLabelMode]] = {
    mode.name: mode for mode in (SparseSlices, NoisyBoundaries, MissingStructures)
}


def parse_mode(spec: ModeSpec) -> WeakLabelMode:
    """Turn a mode spec into its parameters.

    Specs: a mode's parameters as they are; a dict ``{"mode": name, **fields}`` with an
    optional ``"severity"`` shorthand that explicit fields override; or a string
    ``"name[:severity][,field=value...]"``. Severities: ``sparse`` an integer ``k`` or a
    fraction, ``noisy`` ``mild`` or ``severe``, ``missing`` a fraction. In a string, the
    ``noisy`` field ``thin_labels`` is one label, labels joined by ``+``, or ``none``.

    Raises:
        ValueError: naming the unknown mode, field, severity or the bad value.

    Example:
        >>> parse_mode("sparse:4")
        SparseSlices(k=4, fraction=None, axis=2, offset=None)
        >>> parse_mode({"mode": "noisy", "severity": "severe", "max_shift": 0}).max_shift
        0
        >>> parse_mode("noisy:mild,thin_labels=2+5").thin_labels
        (2, 5)
    """
    if isinstance(spec, WeakLabelMode):
        return spec
    if isinstance(spec, str):
        name, _, rest = spec.strip().partition(":")
        fields: dict[str, Any] = {"mode": name.strip()}
        text_value = getattr(MODES.get(fields["mode"]), "text_value", None)
        for position, item in enumerate(part.strip() for part in rest.split(",") if rest):
            key, equals, value = item.partition("=")
            if equals:
                key, value = key.strip(), value.strip()
                fields[key] = text_value(key, value) if text_value else scalar(value)
            elif position == 0 and item:
                fields["severity"] = scalar(item)
            else:
                raise ValueError(f"weak-label spec {spec!r}: expected field=value, got {item!r}")
        return _mode_from_fields(fields, spec)
    if isinstance(spec, Mapping):
        return _mode_from_fields(dict(spec), spec)
    raise ValueError(f"a weak-label mode spec must be a str, dict or mode, got {spec!r}")


def _mode_from_fields(fields: dict[str, Any], spec: Any) -> WeakLabelMode:
    """Build a mode from a spec's fields, severity shorthand first, explicit fields over it."""
    name = fields.pop("mode", None)
    if name not in MODES:
        raise ValueError(
            f"weak-label spec {spec!r}: unknown mode {name!r}; choose one of {list(MODES)}"
        )
    mode = MODES[name]
    known = {field.name for field in dataclasses.fields(mode)}
    unknown = sorted(set(fields) - known - {"severity"})
    if unknown:
        raise ValueError(
            f"weak-label spec {spec!r}: unknown {name} field(s) {unknown}; "
            f"choose from {sorted(known)} or severity"
        )
    options = mode.severity(fields.pop("severity")) if "severity" in fields else {}
    return mode(**(options | fields))


def _spec_list(specs: Sequence[ModeSpec] | ModeSpec) -> list[ModeSpec]:
    """One spec or a sequence of them, as a list."""
    if isinstance(specs, str | Mapping | WeakLabelMode):
        return [specs]
    return list(specs)


def resolve_modes(
    specs: Sequence[ModeSpec], *, thin_labels: tuple[int, ...]
) -> list[WeakLabelMode]:
    """Parse each spec and fill in the dataset's thin structures where a mode leaves them unset.

    Like `parse_mode` for each spec; a mode whose ``thin_labels`` is None (not given) gets
    ``thin_labels``, every other mode is returned as parsed. This is how a data module makes
    the ``noisy`` mode drop the thin segments of its dataset's thin structures.

    Args:
        specs: mode specs, in order.
        thin_labels: the dataset's thin structures (label values, e.g. from
            ``DatasetDescription.thin_labels``); ``()`` for none.

    Raises:
        ValueError: for a bad spec, or ``thin_labels`` that are not distinct labels >= 1.

    Example:
        >>> [m.thin_labels for m in resolve_modes(["noisy", "noisy:thin_labels=none"],
        ...                                       thin_labels=(3,))]
        [(3,), ()]
    """
    thin_labels = labels("resolve_modes", "thin_labels", thin_labels)
    modes = [parse_mode(spec) for spec in _spec_list(specs)]
    return [
        dataclasses.replace(mode, thin_labels=thin_labels)
        if getattr(mode, "thin_labels", ()) is None
        else mode
        for mode in modes
    ]


def draw_weak_label(
    label: np.ndarray, modes: Sequence[ModeSpec], *, seed: int
) -> tuple[np.ndarray, np.ndarray, tuple[WeakLabelDraw, ...]]:
    """``(weak_label, mask, draws)`` in one pass: the weak label and the draws that replay it.

    Each mode is sampled and applied in turn; mode ``i`` draws from ``default_rng([seed, i])``.
    """
    label = checked_label(label)
    seed = integer("simulate_weak_label", "seed", seed, minimum=0)
    parsed = [parse_mode(spec) for spec in _spec_list(modes)]
    weak, mask = label.copy(), np.ones(label.shape, dtype=np.uint8)
    draws = []
    for index, mode in enumerate(parsed):
        draw = mode.sample(weak, np.random.default_rng([seed, index]))
        weak, mask = draw.apply(weak, mask)
        draws.append(draw)
    weak[mask == 0] = 0
    return weak, mask, tuple(draws)


def simulate_weak_label(
    label: np.ndarray, modes: Sequence[ModeSpec], *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate a weak label from a ground-truth label volume.

    Args:
        label: ground truth, integer classes, shape ``(x, y, z)``; never modified.
        modes: mode specs (see `parse_mode`; `resolve_modes` fills in a dataset's thin
            structures), applied in order; empty for the full label.
        seed: non-negative; the same seed and modes always give the same result.

    Returns:
        ``(weak_label, mask)``: the weak label (``label``'s dtype, 0 where unlabelled) and the
        ``uint8`` mask of labelled voxels.

    Example:
        >>> truth = np.ones((4, 4, 4), dtype=np.uint8)
        >>> int(simulate_weak_label(truth, ["sparse:2"], seed=0)[1].sum())
        32
    """
    weak, mask, _ = draw_weak_label(label, modes, seed=seed)
    return weak, mask


def sample_weak_label(
    label: np.ndarray, modes: Sequence[ModeSpec], *, seed: int
) -> tuple[WeakLabelDraw, ...]:
    """The draws `simulate_weak_label` makes for these arguments, to record and replay."""
    return draw_weak_label(label, modes, seed=seed)[2]


def apply_weak_label(
    label: np.ndarray, draws: Sequence[WeakLabelDraw]
) -> tuple[np.ndarray, np.ndarray]:
    """Replay recorded draws on ``label``: the same ``(weak_label, mask)`` as when drawn."""
    weak, mask = checked_label(label).copy(), np.ones(np.shape(label), dtype=np.uint8)
    for draw in draws:
        weak, mask = draw.apply(weak, mask)
    weak[mask == 0] = 0
    return weak, mask
