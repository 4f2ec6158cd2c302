"""What decides an ablation variant's result, and the config keys the runner owns.

``config_hash`` digests everything that decides a variant (the runner skips a variant
whose hash has a finished run); ``check_settings`` refuses, wherever a study or
``--set`` gives them, the keys the runner sets itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from datamodules.dataset import DatasetDescription
from experiments.ablation_file import STAGE1, Ablation, AblationError, Variant
from experiments.ablation_stages import has_stage1
from experiments.profiles import profile_path


def config_hash(
    ablation: Ablation,
    variant: Variant,
    *,
    profile: str,
    settings: Mapping[str, Any],
    data_fingerprint: str,
    description: DatasetDescription,
) -> str:
    """A digest of everything that decides a variant's result.

    The base config and profile files by content, the method overrides, the
    study's budget for the profile, the ``--set`` settings, the seed, and the data
    by content (``manifest_fingerprint`` and the dataset description): change any
    of them and the variant is trained anew. The code version is not part of it
    (it is the ``git_commit`` tag of each run): rerunning after a code change is a
    decision, not a default.
    """
    stage1 = ablation.stage1_config if has_stage1(variant.overrides) else None
    payload = {
        "config": ablation.config.read_text(),
        "stage1_config": stage1.read_text() if stage1 else None,
        # What stage 1 ignores decides which keys reach it, hence its cohort.
        **({"stage1_ignores": list(ablation.stage1_ignores)} if ablation.stage1_ignores else {}),
        "profile": profile_path(profile).read_text(),
        "overrides": variant.overrides,
        "budget": ablation.budgets.get(profile, {}),
        "settings": dict(settings),
        "seed": variant.seed,
        "data": data_fingerprint,
        "dataset": description.to_dict(),
    }
    encoded = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


# Keys the runner sets itself, from its own options; elsewhere they would be ignored
# or would disagree with the description the grid and the hashes were built from.
RUNNER_KEYS = {
    "data.manifest": "--data",
    "data.dataset": "--dataset",
    "data.class_map": "the dataset description (--dataset)",
    "seed_everything": "the file's `seeds` or --seeds",
    "test_after_fit": "the runner (it always tests)",
    "trainer.logger": "the runner (it tags every child run)",
}


def check_settings(ablation: Ablation, settings: Mapping[str, Any]) -> None:
    """Refuse settings the runner decides itself, naming where they come from instead.

    Raises:
        AblationError: naming the key, where it was set and what sets it.
    """
    sources = {"--set": settings, "overrides": ablation.overrides}
    sources |= {f"budgets.{p}": budget for p, budget in ablation.budgets.items()}
    for axis, entries in ablation.grid.items():
        sources |= {f"grid.{axis}.{name}": entry for name, entry in entries.items()}
    for source, overrides in sources.items():
        for key in overrides:
            if key.startswith(STAGE1) and ablation.stage1_config is None:
                raise AblationError(
                    f"ablation {ablation.name}: {source} sets {key!r}, but the study has no "
                    "stage 1 (`stage1:` in its file)"
                )
            bare = key.removeprefix(STAGE1)  # a stage-1 key the runner sets is refused too
            owner = next((k for k in RUNNER_KEYS if bare == k or bare.startswith(k + ".")), None)
            if owner is not None:
                raise AblationError(
                    f"ablation {ablation.name}: {source} sets {key!r}, which comes from "
                    f"{RUNNER_KEYS[owner]}"
                )
