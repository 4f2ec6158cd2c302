"""The bad-input corpus: every way a careless user was seen to break a command, one table.

Each case builds one bad input in a fresh folder (a copy of a small cohort) and runs the
``versaseg`` command in-process. Every case must end the same way: exit status 2, a first
line ``versaseg: error: ...`` that says what is wrong, no Python traceback, no MLflow run
left RUNNING or FAILED (nothing started), and no file written outside the folder's
output places (``mlruns/``, ``reports/``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from datamodules.nifti import save_nifti
from experiments.cli import main
from experiments.tracking import LOCAL_STORE, default_tracking_uri
from tests.conftest import BASELINE

ROOT = Path(__file__).resolve().parents[1]
LOSSES = ROOT / "experiments" / "ablations" / "losses.yaml"
# Where a command may write (run outputs); anything else new in the folder is a leak.
OUTPUT_PLACES = ("mlruns", "reports")


@dataclass(frozen=True)
class Cohort:
    """A writable copy of the phantom cohort in the case's folder."""

    folder: Path

    @property
    def manifest(self) -> Path:
        return self.folder / "manifest.csv"

    @property
    def channels(self) -> list[str]:
        return yaml.safe_load((self.folder / "dataset.yaml").read_text())["channels"]

    def table(self) -> pd.DataFrame:
        return pd.read_csv(self.manifest)

    def write(self, table: pd.DataFrame, name: str = "manifest.csv") -> Path:
        table.to_csv(self.folder / name, index=False)
        return self.folder / name

    def cell(self, row: int, column: str) -> Path:
        return self.folder / self.table().loc[row, column]


def unwritable_folder(tmp: Path) -> Path:
    """An existing folder this process cannot write to (root ignores file modes)."""
    if os.geteuid() == 0:
        return Path("/sys/kernel")
    folder = tmp / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


# --------------------------------------------------------------------------- commands


def fit(cohort: Cohort, *extra: str, manifest: Path | None = None) -> list[str]:
    return [
        "fit", "--config", str(BASELINE), "--profile", "smoke",
        "--data.manifest", str(manifest or cohort.manifest), *extra,
    ]  # fmt: skip


def lightning(command: str, cohort: Cohort, *extra: str) -> list[str]:
    return [command, *fit(cohort, *extra)[1:]]


def ablate(cohort: Cohort, *extra: str, manifest: Path | None = None) -> list[str]:
    data = str(manifest or cohort.manifest)
    return ["ablate", str(LOSSES), "--profile", "smoke", "--data", data, *extra]


def fake_checkpoint(tmp: Path) -> Path:
    """A file torch reads as a Lightning checkpoint (no trained weights needed)."""
    path = tmp / "fake.ckpt"
    torch.save({"state_dict": {}, "pytorch-lightning_version": "2.0.0"}, path)
    return path


# --------------------------------------------------------------------------- breakers


def with_row(cohort: Cohort, change: Callable[[pd.DataFrame], None]) -> Path:
    table = cohort.table()
    change(table)
    return cohort.write(table)


def set_subject(name: str) -> Callable[[Cohort], Path]:
    return lambda cohort: with_row(
        cohort, lambda t: t.__setitem__("subject", [name, *t.subject[1:]])
    )


def write_image(cohort: Cohort, values: Callable[[np.ndarray], np.ndarray]) -> None:
    path = cohort.cell(0, cohort.channels[0])
    import nibabel as nib

    image = nib.load(path)
    save_nifti(path, values(np.asarray(image.dataobj, dtype=np.float32)), image.affine)


def flip_crc_bit(path: Path) -> None:
    """Flip one bit of the gzip trailer's CRC-32: the voxels still read back plausibly."""
    data = bytearray(path.read_bytes())
    data[-6] ^= 0x01
    path.write_bytes(bytes(data))


def symlink_loop(cohort: Cohort) -> None:
    path = cohort.cell(1, "label")
    path.unlink()
    loop = path.with_name("loop.nii.gz")
    os.symlink(loop, path)
    os.symlink(path, loop)


def drop_column(cohort: Cohort) -> Path:
    return cohort.write(cohort.table().drop(columns=cohort.channels[-1]))


def binary_file(tmp: Path, name: str) -> Path:
    path = tmp / name
    path.write_bytes(bytes(range(256)) * 4)
    return path


# --------------------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class Case:
    """One bad input: ``arguments(tmp, cohort)`` breaks it and returns the command line."""

    arguments: Callable[[Path, Cohort], list[str]]
    first_line: str  # a fragment of the first error line


def phantom(*extra: str) -> Callable[[Path, Cohort], list[str]]:
    return lambda tmp, cohort: ["phantom", "--out", str(tmp / "out"), *extra]


CASES: dict[str, Case] = {
    # ---- versaseg phantom
    "phantom no subjects": Case(phantom("--subjects", "0"), "--subjects must be at least 1"),
    "phantom negative subjects": Case(phantom("--subjects", "-3"), "--subjects must be at least 1"),
    "phantom --out is a file": Case(
        lambda tmp, c: ["phantom", "--out", str(c.manifest)], "is a file, not a folder"
    ),
    "phantom read-only --out": Case(
        lambda tmp, c: ["phantom", "--out", str(unwritable_folder(tmp) / "out")], "cannot write"
    ),
    "phantom too-small shape": Case(phantom("--shape", "8", "8", "4"), "--shape"),
    "phantom zero spacing": Case(phantom("--spacing", "0", "2", "2"), "--spacing"),
    "phantom unknown option": Case(phantom("--subjetcs", "3"), "unrecognized arguments"),
    "cleanse read-only --output": Case(
        lambda tmp, c: (
            ["cleanse", "--method", "nearest", "--output", str(unwritable_folder(tmp)), *fit(c)[1:]]
        ),
        "cannot write",
    ),
    "translate --output is a file": Case(
        lambda tmp, c: ["translate", "--output", str(c.manifest / "out"), *fit(c)[1:]],
        "is a file, not a folder",
    ),
    # ---- the manifest, through fit
    "manifest missing": Case(lambda tmp, c: fit(c, manifest=tmp / "nowhere.csv"), "nowhere.csv"),
    "manifest without a channel column": Case(
        lambda tmp, c: fit(c, manifest=drop_column(c)), "missing"
    ),
    "manifest header only": Case(
        lambda tmp, c: fit(c, manifest=c.write(c.table().iloc[:0])), "has no rows"
    ),
    "duplicate subject": Case(
        lambda tmp, c: fit(c, manifest=set_subject("phantom_001")(c)), "phantom_001"
    ),
    "subject escaping the output folder": Case(
        lambda tmp, c: fit(c, manifest=set_subject("../../escaped")(c)), "../../escaped"
    ),
    "absolute subject ID": Case(
        lambda tmp, c: fit(c, manifest=set_subject("/data/abs")(c)), "/data/abs"
    ),
    "missing image file": Case(
        lambda tmp, c: (c.cell(2, "label").unlink(), fit(c))[1], "does not exist"
    ),
    "truncated image": Case(
        lambda tmp, c: (
            c.cell(0, c.channels[0]).write_bytes(c.cell(0, c.channels[0]).read_bytes()[:2000]),
            fit(c),
        )[1],
        "is not a readable NIfTI file",
    ),
    "random bytes as image": Case(
        lambda tmp, c: (c.cell(1, c.channels[0]).write_bytes(os.urandom(700)), fit(c))[1],
        "is not a readable NIfTI file",
    ),
    "corrupt gzip (CRC)": Case(
        lambda tmp, c: (flip_crc_bit(c.cell(3, "label")), fit(c))[1], "damaged gzip file"
    ),
    "symlink loop": Case(lambda tmp, c: (symlink_loop(c), fit(c))[1], "symbolic link loop"),
    "NaN voxels": Case(
        lambda tmp, c: (write_image(c, lambda v: np.where(v > v.mean(), np.nan, v)), fit(c))[1],
        "NaN",
    ),
    "constant channel": Case(
        lambda tmp, c: (write_image(c, np.zeros_like), fit(c))[1], "same value (0) in every voxel"
    ),
    "shape mismatch": Case(
        lambda tmp, c: (write_image(c, lambda v: v[:, :, :-2]), fit(c))[1], "differs from the label"
    ),
    "label outside the class map": Case(
        lambda tmp, c: (
            save_nifti(c.cell(4, "label"), np.full((48, 48, 32), 9, np.uint8), np.eye(4) * 2),
            fit(c),
        )[1],
        "not in the class map",
    ),
    "dataset description not YAML": Case(
        lambda tmp, c: fit(c, "--data.dataset", str(binary_file(tmp, "dataset.yaml"))),
        "dataset.yaml",
    ),
    # ---- the config
    "config file missing": Case(
        lambda tmp, c: ["fit", "--config", str(tmp / "missing.yaml"), "--data.manifest", "x"],
        "missing.yaml",
    ),
    "config file not text": Case(
        lambda tmp, c: fit(c, "--config", str(binary_file(tmp, "binary.yaml"))), "binary.yaml"
    ),
    "unknown config key": Case(
        lambda tmp, c: fit(c, "--model.init_args.nonsense", "1"), "nonsense"
    ),
    "unknown network": Case(
        lambda tmp, c: fit(c, "--model.init_args.network", "resnet"), "unknown network 'resnet'"
    ),
    "bad loss option": Case(
        lambda tmp, c: fit(c, "--model.init_args.loss_weighting", "bogus"), "bogus"
    ),
    "reserved channel name": Case(lambda tmp, c: fit(c, "--data.channels", "[label]"), "label"),
    "repeated channel name": Case(
        lambda tmp, c: fit(c, "--data.channels", f"[{c.channels[0]}, {c.channels[0]}]"),
        "must not repeat a name",
    ),
    "channel not in the manifest": Case(
        lambda tmp, c: fit(c, "--data.channels", "[flair]"), "flair"
    ),
    "samples_per_volume above queue_length": Case(
        lambda tmp, c: fit(c, "--data.samples_per_volume", "16", "--data.queue_length", "8"),
        "queue_length",
    ),
    "zero batch size": Case(lambda tmp, c: fit(c, "--data.batch_size", "0"), "batch_size"),
    "unknown profile": Case(lambda tmp, c: fit(c, "--profile", "huge"), "huge"),
    # ---- checkpoints and runs
    "predict without a checkpoint": Case(
        lambda tmp, c: lightning("predict", c, "--prediction_writer.output_dir", "out"),
        "predict needs --ckpt_path",
    ),
    "test with a missing checkpoint": Case(
        lambda tmp, c: lightning("test", c, "--ckpt_path", "gone.ckpt"), "gone.ckpt"
    ),
    "fit resuming a missing checkpoint": Case(
        lambda tmp, c: fit(c, "--ckpt_path", "gone.ckpt"), "gone.ckpt"
    ),
    "fit with a non-checkpoint file": Case(
        lambda tmp, c: fit(c, "--ckpt_path", str(c.manifest)), "not a checkpoint"
    ),
    "test with a non-checkpoint file": Case(
        lambda tmp, c: lightning("test", c, "--ckpt_path", str(c.manifest)), "not a checkpoint"
    ),
    "predict with a folder as checkpoint": Case(
        lambda tmp, c: lightning("predict", c, "--ckpt_path", str(tmp)), "not a checkpoint"
    ),
    "unknown run_id": Case(
        lambda tmp, c: fit(c, "--trainer.logger.init_args.run_id", "0123456789abcdef"),
        "0123456789abcdef",
    ),
    "read-only prediction output": Case(
        lambda tmp, c: lightning(
            "predict",
            c,
            "--ckpt_path",
            str(fake_checkpoint(tmp)),
            "--prediction_writer.output_dir",
            str(unwritable_folder(tmp) / "labels"),
        ),
        "cannot write",
    ),
    "read-only checkpoint folder": Case(
        lambda tmp, c: fit(c, "--checkpoint.dirpath", str(unwritable_folder(tmp) / "ckpt")),
        "cannot write",
    ),
    "unwritable MLflow store": Case(
        lambda tmp, c: (Path("mlruns").write_text("not a folder"), fit(c))[1], "MLflow store"
    ),
    # ---- ablate
    "ablation file missing": Case(
        lambda tmp, c: ["ablate", str(tmp / "study.yaml"), "--data", str(c.manifest)], "study.yaml"
    ),
    "ablation file not text": Case(
        lambda tmp, c: ["ablate", str(binary_file(tmp, "study.yaml")), "--data", str(c.manifest)],
        "study.yaml",
    ),
    "ablate unknown profile": Case(lambda tmp, c: [*ablate(c), "--profile", "huge"], "huge"),
    "ablate no jobs": Case(lambda tmp, c: [*ablate(c), "--jobs", "0"], "--jobs"),
    "ablate unknown setting": Case(
        lambda tmp, c: [*ablate(c), "--set", "model.init_args.nonsense=1"], "nonsense"
    ),
    "ablate NaN volume": Case(
        lambda tmp, c: (write_image(c, lambda v: v * np.nan), ablate(c))[1], "NaN"
    ),
    "ablate manifest missing": Case(
        lambda tmp, c: ablate(c, manifest=tmp / "nowhere.csv"), "nowhere.csv"
    ),
}


def snapshot(folder: Path) -> set[str]:
    """Every path under ``folder`` outside its output places."""
    return {
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.relative_to(folder).parts[0] not in OUTPUT_PLACES
    }


@pytest.fixture
def cohort(in_tmp: Path, phantom_manifest: Path) -> Cohort:
    folder = in_tmp / "cohort"
    shutil.copytree(phantom_manifest.parent, folder)
    return Cohort(folder)


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_each_bad_input_is_one_clear_error(
    case: Case, cohort: Cohort, in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = case.arguments(in_tmp, cohort)
    before = snapshot(in_tmp)
    code = main(arguments)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, f"no error message; stdout: {out[-2000:]}"
    assert "Traceback" not in out + err, err
    assert lines[0].startswith("versaseg: error: "), err
    assert case.first_line in lines[0], err
    assert code == 2, err
    written = snapshot(in_tmp) - before
    assert not written, f"written outside {OUTPUT_PLACES}: {sorted(written)}"
    assert not (in_tmp.parent.parent / "escaped").exists()
    if LOCAL_STORE.is_file():
        client = mlflow.MlflowClient(default_tracking_uri())
        experiments = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(experiments) if experiments else []
        assert [r.info.status for r in runs if r.info.status in ("RUNNING", "FAILED")] == []
