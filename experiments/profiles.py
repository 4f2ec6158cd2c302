"""Profiles: the sizes and budgets of a run (``smoke``, ``quick``, ``paper``).

A profile is a config file in ``experiments/configs/profiles/``; this module
finds it by name, for the CLI and the ablation runner alike.
"""

from __future__ import annotations

from pathlib import Path

PROFILES_DIR = Path(__file__).resolve().parent / "configs" / "profiles"
DEFAULT_PROFILE = "quick"


class UnknownProfileError(ValueError):
    """No profile of that name."""


def profile_path(name: str) -> Path:
    """The config file of profile ``name``.

    Raises:
        UnknownProfileError: listing the profiles there are.
    """
    path = PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise UnknownProfileError(f"unknown profile {name!r}; choose one of {known}")
    return path
