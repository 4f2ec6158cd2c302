"""What every stage run records in MLflow once its cohort is written.

A stage (label cleansing, pix2pix translation) is an MLflow run whose product is a folder
(``datamodules.stage_output``). Its tags say what kind of stage it was, where the cohort
is and what it holds; ``stage_complete=true`` marks one that a later run may reuse
(``experiments.ablation_stages``). Runs trained on the cohort record the same
``manifest_fingerprint`` as the stage's ``stage_output_fingerprint``, which links them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datamodules.manifest import manifest_fingerprint, read_manifest

STAGE_FILE = "stage.json"


def record_stage(
    logger: Any,
    output: Path,
    *,
    stage: str,
    method_tag: str,
    method: str,
    channels: Sequence[str],
    artifacts: Sequence[Path] | None = None,
) -> None:
    """Log the stage's output (``artifacts``, or the whole folder) and tag the run complete.

    Args:
        logger: the run's ``TrackingLogger``.
        output: the cohort folder, with its ``manifest.csv``.
        stage: what the stage produces (``labels``, ``images``), the ``stage`` tag.
        method_tag: the tag that names the method (``cleansing_method``, ...).
        method: the method.
        channels: the cohort's channels (what its fingerprint reads).
        artifacts: files of ``output`` to log under ``stage_output/``; None logs it all.
    """
    client, run_id = logger.experiment, logger.run_id
    if artifacts is None:
        client.log_artifacts(run_id, str(output), "stage_output")
    else:
        for path in artifacts:
            client.log_artifact(run_id, str(path), "stage_output")
    manifest = output / "manifest.csv"
    fingerprint = manifest_fingerprint(manifest, read_manifest(manifest, channels))
    for key, value in {
        "stage": stage,
        method_tag: method,
        "stage_output": str(manifest.resolve()),
        "stage_output_fingerprint": fingerprint,
        "stage_complete": "true",
    }.items():
        client.set_tag(run_id, key, value)
