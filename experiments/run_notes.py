"""Run descriptions (``mlflow.note.content``): what a run is and what it gave.

The MLflow UI shows a run's description at the top of its page. Every fit gets
one from its config (``fit_note``); its headline test numbers are added when the
test ends (``with_headline``); the ablation runner replaces a child's with the
variant, its changes to the base config and the same numbers (``variant_note``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow

from experiments.mlflow_ui import NOTE_TAG
from lightning_modules.image_metrics import IMAGE_METRICS

# Where the headline starts in a note, so that a second test replaces it.
HEADLINE = "\n\n**Test**: "
# Label-cleansing stages score their labels against the truth.
LABEL_PREFIX = "labels/dice_"


def headline(metrics: Mapping[str, float]) -> str:
    """The numbers a researcher looks for first, e.g. ``Dice mean 0.812 (cerebrum 0.986)``.

    >>> headline({"test/dice_mean": 0.5, "test/dice_a": 0.25, "test/dice_b": 0.75})
    'Dice mean 0.500 (a 0.250, b 0.750)'
    >>> headline({"test/ssim": 0.7, "test/mae": 0.4})
    'MAE 0.400, SSIM 0.700'
    >>> headline({"train/loss": 1.0})
    ''
    """
    per_class = {
        key.removeprefix("test/dice_"): value
        for key, value in metrics.items()
        if key.startswith("test/dice_") and key != "test/dice_mean"
    }
    if "test/dice_mean" in metrics:
        classes = ", ".join(f"{name} {value:.3f}" for name, value in per_class.items())
        text = f"Dice mean {metrics['test/dice_mean']:.3f}"
        return f"{text} ({classes})" if classes else text
    # Image-translation runs have no Dice: their headline is the image metrics.
    images = [name for name in IMAGE_METRICS if f"test/{name}" in metrics]
    if images:
        return ", ".join(f"{name.upper()} {metrics[f'test/{name}']:.3f}" for name in images)
    labels = {
        key.removeprefix(LABEL_PREFIX): value
        for key, value in metrics.items()
        if key.startswith(LABEL_PREFIX)
    }
    if labels:
        return "label Dice against the truth: " + ", ".join(
            f"{name} {value:.3f}" for name, value in labels.items()
        )
    return ""


def with_headline(note: str, metrics: Mapping[str, float], cases: int | None = None) -> str:
    """``note`` with its headline section (re)placed by the one of ``metrics``."""
    text = headline(metrics)
    base = note.split(HEADLINE)[0]
    if not text:
        return base
    counted = f" over {cases} test case{'s' if cases > 1 else ''}" if cases else ""
    return f"{base}{HEADLINE}{text}{counted}."


def fit_note(params: Mapping[str, str], thread: str, stage: str) -> str:
    """A standalone run's description from its flattened config params."""
    model = params.get("model.class_path", "?").rsplit(".", 1)[-1]
    network = params.get("model.init_args.network", "")
    parts = [f"`{model}`" + (f" with `{network}`" if network else "")]
    if "model.init_args.loss" in params:
        parts.append(
            f"loss `{params['model.init_args.loss']}`, weighting "
            f"`{params.get('model.init_args.loss_weighting', 'none')}`"
        )
    data = [f"task `{params.get('data.task', 'multiclass')}`"]
    if params.get("data.channels") not in (None, "None"):
        data.append(f"channels {params['data.channels']}")
    return (
        f"A `{stage}` run of the **{thread}** thread: {', '.join(parts)}.\n\n"
        f"Data: `{params.get('data.manifest', '?')}` ({', '.join(data)}); "
        f"seed {params.get('seed_everything', '?')}."
    )


def variant_note(
    *,
    ablation: str,
    variant: str,
    profile: str,
    seed: int,
    base_config: str,
    overrides: Mapping[str, Any],
    metrics: Mapping[str, float] | None = None,
    error: str | None = None,
) -> str:
    """An ablation child's description: which variant, what it changed, what it gave."""
    changes = "; ".join(f"`{key}: {_compact(value)}`" for key, value in overrides.items())
    note = (
        f"Variant **{variant}** of ablation `{ablation}` (profile {profile}, seed {seed}).\n\n"
        f"Changed from the base config `{shown_path(base_config)}`: {changes or 'nothing'}."
    )
    if error:
        return f"{note}\n\n**Failed**: {error}"
    return with_headline(note, metrics or {})


def set_note(client: mlflow.MlflowClient, run_id: str, note: str) -> None:
    """Write a run's description unless it already reads ``note``."""
    if client.get_run(run_id).data.tags.get(NOTE_TAG) != note:
        client.set_tag(run_id, NOTE_TAG, note)


def shown_path(path: str | Path) -> str:
    """A path relative to the working folder when it lies inside it, else as given."""
    resolved = Path(path).resolve()
    cwd = Path.cwd().resolve()
    return str(resolved.relative_to(cwd)) if resolved.is_relative_to(cwd) else str(path)


def _compact(value: Any) -> str:
    """A config value on one line: scalars as they are, the rest as JSON."""
    if isinstance(value, str | int | float | bool) or value is None:
        return str(value)
    return json.dumps(value, default=str)
