"""Checks of what a command was given, made before any work starts.

A bad command-line option, an output folder that cannot be written, or a file that is
not a checkpoint would otherwise surface minutes later as a library traceback (or,
for an unwritable folder, after training). Each check raises ``UsageError`` with one
line that names the option, the path and the problem; ``experiments.cli`` prints it
as ``versaseg: error: ...`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import zipfile
from pathlib import Path
from typing import NoReturn


class UsageError(ValueError):
    """An option or path a command cannot use."""


class CommandParser(argparse.ArgumentParser):
    """``argparse`` parser whose errors raise ``UsageError`` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("versaseg ")
        raise UsageError(f"{command}: {message} (versaseg {command} --help lists the options)")


def check_output_folder(path: str | Path, option: str) -> None:
    """Refuse an output folder that cannot be created or written; creates nothing.

    The nearest existing ancestor must be a folder this process can create files in
    (tried with a temporary file, because file modes do not bind the root user).
    """
    path = Path(path).absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {path}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise UsageError(
            f"{option} {path}: cannot write to {existing} ({error.strerror})"
        ) from error


def check_checkpoint_file(path: str | Path, option: str = "--ckpt_path") -> None:
    """Refuse a path that is not a file ``torch.save`` wrote (a zip archive holding a pickle).

    Opening the archive's index reads a few bytes, not the weights.
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{option} {path}: no such checkpoint file")
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a folder, not a checkpoint file")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile) as error:
        reason = getattr(error, "strerror", None) or "not written by torch.save"
        raise UsageError(f"{option} {path}: not a checkpoint file ({reason})") from error
    if not any(name.endswith("data.pkl") for name in names):
        raise UsageError(f"{option} {path}: not a checkpoint file (a zip archive without data.pkl)")


# jsonargparse's report on a value no class accepts: the alternatives it tried, with
# the reason several lines down. These lines describe the attempt, not the problem.
_PARSER_NOISE = re.compile(
    r"^(Does not validate against any of the Union subtypes|Subtypes:|Errors:|Given value"
    r"|Expected a <class 'NoneType'>|Problem with given class_path)"
)
_PARSER_KEY = re.compile(r'^Parser key "([^"]+)":\s*(.*)$')


def parser_reason(message: str) -> str:
    """The reasons in a jsonargparse error, each prefixed by the config key it concerns.

    ``Parser key "model": ... Option 'nonsense' is not accepted`` becomes
    ``model: Option 'nonsense' is not accepted``; a message without that structure is
    returned unchanged.
    """
    keys: list[tuple[int, str]] = []
    reasons: list[str] = []
    for raw in message.splitlines():
        indent = len(raw) - len(raw.lstrip(" -"))
        line = raw.strip().removeprefix("- ").strip()
        while keys and keys[-1][0] >= indent:
            keys.pop()
        key = _PARSER_KEY.match(line)
        if key:
            keys.append((indent, key.group(1)))
            line = key.group(2)
        if not line or _PARSER_NOISE.match(line):
            continue
        prefix = ".".join(name for _, name in keys)
        reasons.append(f"{prefix}: {line}" if prefix else line)
    # "Expected a <class ...>" is the reason only where no alternative says more.
    said = [reason for reason in reasons if "Expected a <class" not in reason] or reasons
    return "; ".join(dict.fromkeys(said)) or message
