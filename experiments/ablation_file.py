"""Ablation files: a study's base config, method settings, budgets per profile, grid and seeds.

An ablation file (``experiments/ablations/*.yaml``) states *methods*; profiles
state *budgets*. A variant's config is built in one precedence, lowest first::

    base config < ablation `overrides` + grid entry (method) < profile file
        < ablation `budgets[<profile>]` < --set key=value < runner flags

so ``--profile paper`` gives the paper protocol whatever the study trains in
``quick``, and ``--set`` decides last. A grid entry whose name holds
``{structure}`` stands for one entry per structure of the dataset's class map,
with ``{structure}`` replaced in its name and in its string values (the other placeholders,
``{thin_structure}`` and the translation pair's channels, are in
``experiments.ablation_placeholders``)::

    grid:
      task:
        multiclass: {data.task: multiclass}
        "{structure}": {data.task: "binary:{structure}"}

Example:
    >>> nested({"a.b": 1, "a.c": 2})
    {'a': {'b': 1, 'c': 2}}
    >>> parse_settings(["trainer.max_epochs=2", "data.task=binary:duct"])
    {'trainer.max_epochs': 2, 'data.task': 'binary:duct'}
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from datamodules.dataset import DatasetDescription
from experiments.ablation_placeholders import (
    STRUCTURE,
    PlaceholderError,
    channel_substituted,
    channel_values,
    dataset_entries,
    entry_values,
)
from experiments.profiles import PROFILES_DIR

REPO = Path(__file__).resolve().parents[1]
REQUIRED_KEYS = ("name", "config", "grid")
KNOWN_KEYS = (
    *REQUIRED_KEYS, "experiment", "seeds", "profile_seeds", "overrides", "budgets", "resources",
    "tables", "stage1",
)  # fmt: skip
# Keys under this prefix configure a variant's first stage (`stage1:` in the file).
STAGE1 = "stage1."
# `tables:` keys: the axes that make a row label, the axis that holds the task
# (binary tasks rank together), the axis whose entries become column groups
# instead of the task, the column groups plotted against labelled fraction, and
# the bootstrap of the rank intervals (`experiments.rank_intervals`), and the axis
# whose entries the stability test compares (`experiments.stability_test`).
TABLE_KEYS = (
    "rows",
    "task",
    "columns",
    "sparsity",
    "rank_resamples",
    "rank_seed",
    "stability_axis",
)
# The bootstrap's defaults, the only place they are stated: 1000 resamples of the
# test cases (about 13 s for the 60 variants of the loss study on 2 cores) from seed 0.
TABLE_DEFAULTS: dict[str, int] = {"rank_resamples": 1000, "rank_seed": 0}


class AblationError(ValueError):
    """The ablation file or its options are unusable; the message says which and why."""


@dataclass(frozen=True)
class Variant:
    """One point of the grid: its name, axis values, method overrides and seed."""

    name: str
    axes: dict[str, str]
    overrides: dict[str, Any]
    seed: int
    config_hash: str = ""


@dataclass
class Ablation:
    """A parsed ablation file."""

    name: str
    experiment: str
    config: Path
    overrides: dict[str, Any]
    grid: dict[str, dict[str, dict[str, Any]]]
    seeds: list[int]
    budgets: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Seeds of a profile where they differ from `seeds` (the paper profile repeats runs).
    profile_seeds: dict[str, list[int]] = field(default_factory=dict)
    resources: dict[str, dict[str, float]] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=lambda: dict(TABLE_DEFAULTS))
    source: Path | None = None
    stage1_config: Path | None = None
    stage1_ignores: tuple[str, ...] = ()


def load_ablation(path: str | Path) -> Ablation:
    """Read and check an ablation file.

    Raises:
        AblationError: naming the file and the problem.
    """
    path = Path(path)
    try:
        content = yaml.safe_load(path.read_text())
    except OSError as error:
        raise AblationError(f"ablation file {path}: cannot be read ({error.strerror})") from error
    except UnicodeDecodeError as error:
        raise AblationError(
            f"ablation file {path}: not a text YAML file ({error.reason})"
        ) from error
    except yaml.YAMLError as error:
        raise AblationError(f"ablation file {path}: is not valid YAML ({error})") from error
    if not isinstance(content, dict):
        raise AblationError(f"ablation file {path}: expected a mapping at the top level")
    missing = [key for key in REQUIRED_KEYS if key not in content]
    if missing:
        raise AblationError(f"ablation file {path}: missing keys {missing}")
    unknown = sorted(set(content) - set(KNOWN_KEYS))
    if unknown:
        raise AblationError(f"ablation file {path}: unknown keys {unknown}; known: {KNOWN_KEYS}")
    grid = content["grid"]
    if not isinstance(grid, dict) or not grid:
        raise AblationError(f"ablation file {path}: `grid` must map axis names to entries")
    for axis, entries in grid.items():
        if not isinstance(entries, dict) or not entries:
            raise AblationError(f"ablation file {path}: axis {axis!r} has no named entries")
        for entry, overrides in entries.items():
            if not isinstance(overrides, dict):
                raise AblationError(
                    f"ablation file {path}: entry {axis}.{entry} must map config keys to values"
                )
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(content["name"])):
        raise AblationError(
            f"ablation file {path}: name {content['name']!r} may use letters, digits, '_', "
            "'.' and '-' only (it is an MLflow tag value and a folder name)"
        )
    config = Path(content["config"])
    config = config if config.is_absolute() else REPO / config
    if not config.is_file():
        raise AblationError(f"ablation file {path}: base config {config} does not exist")
    seeds = _checked_seeds(path, content.get("seeds", [42]), "seeds")
    profile_seeds = _checked_profiles(path, content.get("profile_seeds") or {}, "profile_seeds")
    profile_seeds = {
        profile: _checked_seeds(path, given, f"profile_seeds.{profile}")
        for profile, given in profile_seeds.items()
    }
    budgets = _checked_budgets(path, content.get("budgets") or {})
    resources = _checked_budgets(path, content.get("resources") or {}, "resources")
    for profile, share in resources.items():
        if set(share) - {"cpus", "gpus"} or not all(
            isinstance(v, int | float) and v >= 0 for v in share.values()
        ):
            raise AblationError(
                f"ablation file {path}: resources.{profile} takes cpus and gpus, numbers >= 0"
            )
    _check_tables(path, dict(content.get("tables") or {}), grid)
    stage1_config, stage1_ignores = _checked_stage1(path, content.get("stage1"), grid)
    return Ablation(
        name=str(content["name"]),
        experiment=str(content.get("experiment", content["name"])),
        config=config,
        overrides=dict(content.get("overrides") or {}),
        grid={str(a): {str(e): dict(o) for e, o in entries.items()} for a, entries in grid.items()},
        seeds=seeds,
        profile_seeds=profile_seeds,
        budgets=budgets,
        resources=resources,
        tables={**TABLE_DEFAULTS, **(content.get("tables") or {})},
        source=path,
        stage1_config=stage1_config,
        stage1_ignores=stage1_ignores,
    )


def _checked_stage1(
    path: Path, stage1: Any, grid: Mapping[str, Any]
) -> tuple[Path | None, tuple[str, ...]]:
    """``stage1: {config: FILE, ignores: [KEYS]}``: a first stage's config layer, if any.

    Grid entries that set ``stage1.method`` run it before training (label cleansing's
    reconstructed labels, pix2pix's images); ``stage1.<key>`` configures it. Stage 1 also
    takes the variant's ``data.*`` keys, except those listed in ``ignores`` (the input
    channels of a segmentation that reads a generated channel, say).
    """
    uses = [
        f"{axis}.{entry}"
        for axis, entries in grid.items()
        for entry, overrides in entries.items()
        if any(str(key).startswith(STAGE1) for key in overrides)
    ]
    if stage1 is None:
        if uses:
            raise AblationError(
                f"ablation file {path}: grid entries {uses} set stage1 keys, but the file has "
                "no `stage1: {config: ...}`"
            )
        return None, ()
    if (
        not isinstance(stage1, dict)
        or "config" not in stage1
        or set(stage1) - {"config", "ignores"}
    ):
        raise AblationError(
            f"ablation file {path}: `stage1` must be {{config: FILE, ignores: [data keys]}}"
        )
    ignores = stage1.get("ignores") or []
    if not isinstance(ignores, list) or not all(str(k).startswith("data.") for k in ignores):
        raise AblationError(
            f"ablation file {path}: `stage1.ignores` must list data keys (data.channels, ...)"
        )
    config = Path(stage1["config"])
    config = config if config.is_absolute() else REPO / config
    if not config.is_file():
        raise AblationError(f"ablation file {path}: stage1 config {config} does not exist")
    return config, tuple(str(key) for key in ignores)


def _checked_seeds(path: Path, seeds: Any, key: str) -> list[int]:
    """A non-empty list of integer seeds, or an AblationError naming ``key``."""
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise AblationError(f"ablation file {path}: `{key}` must be a list of integers")
    return seeds


def _checked_profiles(path: Path, mapping: Any, key: str) -> dict[str, Any]:
    """``key:`` maps real profile names (``experiments/configs/profiles``) to values."""
    profiles = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
    if not isinstance(mapping, dict):
        raise AblationError(f"ablation file {path}: `{key}` must map profile names to settings")
    for profile in mapping:
        if profile not in profiles:
            raise AblationError(
                f"ablation file {path}: `{key}` names profile {profile!r}; "
                f"the profiles are {profiles}"
            )
    return {str(profile): value for profile, value in mapping.items()}


def _checked_budgets(path: Path, budgets: Any, key: str = "budgets") -> dict[str, dict[str, Any]]:
    """``budgets:`` (or ``resources:``) maps profile names to settings; only real profiles."""
    budgets = _checked_profiles(path, budgets, key)
    for profile, settings in budgets.items():
        if not isinstance(settings, dict):
            raise AblationError(f"ablation file {path}: {key}.{profile} must map keys to values")
    return {profile: dict(settings) for profile, settings in budgets.items()}


def _check_tables(path: Path, tables: dict[str, Any], grid: Mapping[str, Any]) -> None:
    """Raise an AblationError for a `tables:` key or axis the file does not define."""
    unknown = sorted(set(tables) - set(TABLE_KEYS))
    if unknown:
        raise AblationError(
            f"ablation file {path}: unknown `tables` key(s) {unknown}; known: {list(TABLE_KEYS)}"
        )
    named = ("task", "columns", "stability_axis")
    axes = [*tables.get("rows", []), *[tables[k] for k in named if k in tables]]
    missing = [axis for axis in axes if axis not in grid]
    if missing:
        raise AblationError(
            f"ablation file {path}: `tables` names axes {missing} that the grid lacks; "
            f"the grid has {list(grid)}"
        )
    for key, least in (("rank_resamples", 1), ("rank_seed", 0)):
        value = tables.get(key, TABLE_DEFAULTS[key])
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise AblationError(
                f"ablation file {path}: `tables.{key}` must be an integer >= {least}, got {value!r}"
            )
    if "sparsity" in tables:
        entries = grid.get(tables.get("columns"), {})
        bad = [entry for entry in tables["sparsity"] if entry not in entries]
        if not entries or bad:
            raise AblationError(
                f"ablation file {path}: `tables.sparsity` must list entries of the "
                f"`tables.columns` axis; {bad or tables['sparsity']} are not"
            )


def expand(
    ablation: Ablation,
    *,
    structures: Sequence[str] = (),
    seeds: Sequence[int] | None = None,
    description: DatasetDescription | None = None,
) -> list[Variant]:
    """Every combination of one entry per axis and one seed, in grid order.

    The dataset's ``description`` (or just its ``structures``, in class-map order) fills
    the placeholders of ``experiments.ablation_placeholders``.
    """
    seeds = list(seeds) if seeds else ablation.seeds
    values = entry_values(description) or {STRUCTURE: tuple(structures)}
    channels = channel_values(description)
    try:
        grid = {axis: dataset_entries(entries, values) for axis, entries in ablation.grid.items()}
    except PlaceholderError as error:
        raise AblationError(f"ablation {ablation.name}: {error}") from error
    empty = [axis for axis, entries in grid.items() if not entries]
    if empty:
        raise AblationError(f"ablation {ablation.name}: axes {empty} have no entries for this data")
    axes = list(grid)
    variants = []
    for entries in itertools.product(*(grid[axis].items() for axis in axes)):
        overrides = copy.deepcopy(ablation.overrides)
        for _, entry_overrides in entries:
            overrides.update(copy.deepcopy(entry_overrides))
        try:
            overrides = channel_substituted(overrides, channels)
        except PlaceholderError as error:
            raise AblationError(f"ablation {ablation.name}: {error}") from error
        names = [name for name, _ in entries]
        for seed in seeds:
            suffix = f"-seed{seed}" if len(seeds) > 1 else ""
            variants.append(
                Variant(
                    name="-".join(names) + suffix,
                    axes=dict(zip(axes, names, strict=True)),
                    overrides=overrides,
                    seed=seed,
                )
            )
    return variants


def row_label(ablation: Ablation, variant: Variant) -> str:
    """The table row of a variant: its values on the ``tables.rows`` axes (``ce+dtm``)."""
    grouping = {ablation.tables.get("task"), ablation.tables.get("columns")}
    axes = ablation.tables.get("rows") or [a for a in ablation.grid if a not in grouping]
    return "+".join(variant.axes[axis] for axis in axes)


def nested(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``: a config file LightningCLI can read."""
    tree: dict[str, Any] = {}
    for key, value in overrides.items():
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise AblationError(f"override {key!r} goes inside {part!r}, which is a value")
        if isinstance(node.get(leaf), dict) and isinstance(value, dict):
            node[leaf] = {**node[leaf], **copy.deepcopy(value)}
        else:
            node[leaf] = copy.deepcopy(value)
    return tree


def parse_settings(items: Sequence[str]) -> dict[str, Any]:
    """``--set key=value`` items -> ``{key: value}``, values read as YAML (``2``, ``[a]``, ``x``).

    Raises:
        AblationError: for an item without ``=`` or a value that is not YAML.
    """
    settings: dict[str, Any] = {}
    for item in items:
        key, equals, text = item.partition("=")
        if not equals or not key.strip():
            raise AblationError(f"--set {item!r}: expected key=value, e.g. trainer.max_epochs=2")
        try:
            settings[key.strip()] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as error:
            raise AblationError(f"--set {item!r}: the value is not valid YAML ({error})") from error
    return settings
