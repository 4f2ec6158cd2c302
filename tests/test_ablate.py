"""The ablation runner end to end: a 2 x 2 grid with the smoke profile on a tiny phantom."""

from __future__ import annotations

import gc
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from experiments.ablation_file import AblationError, expand, load_ablation, nested
from experiments.ablation_jobs import start_worker
from experiments.cli import main
from experiments.mlflow_ui import NOTE_TAG
from experiments.tracking import default_tracking_uri
from tests.conftest import BASELINE

GRID = {
    "task": {"multiclass": {"data.task": "multiclass"}, "vessels": {"data.task": "binary:vessels"}},
    "weighting": {
        "none": {"model.init_args.loss_weighting": "none"},
        "inverse": {"model.init_args.loss_weighting": "inverse"},
    },
}


def write_ablation(folder: Path, grid: dict | None = None) -> Path:
    study = {
        "name": "tiny",
        "experiment": "tiny",
        "config": str(BASELINE),
        "seeds": [3],
        "overrides": {"model.init_args.loss": "ce", "model.init_args.loss_options": {}},
        "grid": grid or GRID,
    }
    grid = study["grid"]
    if "weighting" in grid and "task" in grid:
        study["tables"] = {"rows": ["weighting"], "task": "task"}
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def child_runs() -> list[mlflow.entities.Run]:
    client = mlflow.MlflowClient(default_tracking_uri())
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    return [run for run in runs if run.data.tags.get("ablation_role") != "parent"]


def ablate(study: Path, manifest: Path) -> int:
    return main(["ablate", str(study), "--profile", "smoke", "--data", str(manifest)])


def test_expand_and_nested(tmp_path):
    study = load_ablation(write_ablation(tmp_path))
    variants = expand(study)
    assert [v.name for v in variants] == [
        "multiclass-none",
        "multiclass-inverse",
        "vessels-none",
        "vessels-inverse",
    ]
    assert variants[3].overrides["data.task"] == "binary:vessels"
    assert variants[3].overrides["model.init_args.loss"] == "ce"  # shared overrides kept
    assert nested({"a.b.c": 1, "a.d": 2}) == {"a": {"b": {"c": 1}, "d": 2}}
    with pytest.raises(AblationError, match="which is a value"):
        nested({"a.b": 1, "a.b.c": 2})
    assert [v.seed for v in expand(study, seeds=[1, 2])][:2] == [1, 2]


def test_variants_do_not_share_mutable_overrides(tmp_path):
    grid = {
        "form": {
            "plain": {"model.init_args.loss_options.smooth": 1.0},
            "other": {"model.init_args.loss_weighting": "none"},
        }
    }
    variants = expand(load_ablation(write_ablation(tmp_path, grid)))
    nested(variants[0].overrides)
    assert "smooth" not in nested(variants[1].overrides)["model"]["init_args"]["loss_options"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name: x\n", "missing keys"),
        ("name: x\nconfig: nowhere.yaml\ngrid: {a: {b: {}}}\n", "does not exist"),
        ("[1, 2]\n", "expected a mapping"),
        ("name: x\nconfig: c\ngrid: {a: {}}\n", "has no named entries"),
        ('name: "it\'s"\nconfig: c\ngrid: {a: {b: {}}}\n', "letters, digits"),
    ],
)
def test_bad_ablation_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(AblationError, match=message):
        load_ablation(path)


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"rows": ["weighting"], "colour": "task"}, r"unknown `tables` key\(s\) \['colour'\]"),
        ({"rows": ["loss"]}, r"names axes \['loss'\] that the grid lacks"),
        ({"columns": "task", "sparsity": ["binary"]}, r"\['binary'\] are not"),
        ({"sparsity": ["multiclass"]}, "entries of the `tables.columns` axis"),
    ],
)
def test_bad_tables_settings_name_the_problem(tmp_path, tables, message):
    path = write_ablation(tmp_path)
    study = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**study, "tables": tables}))
    with pytest.raises(AblationError, match=message):
        load_ablation(path)


def test_the_shipped_ablations_load():
    phantom = ("cerebrum", "cerebellum", "brainstem", "vessels")
    for name, structures, count in (
        ("losses", phantom, 60),
        ("losses", ("gland", "duct"), 36),
        ("skips", phantom, 24),
    ):
        study = load_ablation(Path(__file__).parents[1] / f"experiments/ablations/{name}.yaml")
        assert len(expand(study, structures=structures)) == count


@pytest.mark.slow
def test_tiny_ablation_runs_resumes_and_tabulates(in_tmp, phantom_manifest, capsys):
    study = write_ablation(in_tmp)
    assert ablate(study, phantom_manifest) == 0
    runs = child_runs()
    assert len(runs) == 4
    assert {r.info.status for r in runs} == {"FINISHED"}
    parents = {r.data.tags["mlflow.parentRunId"] for r in runs}
    assert len(parents) == 1
    first_output = capsys.readouterr().out
    assert "[4/4]" in first_output and "ETA" in first_output

    # The tables' numbers are the child runs' numbers.
    summary = pd.read_csv(in_tmp / "reports/tiny/summary.csv")
    for run in runs:
        variant = run.data.tags["axis.weighting"]
        task = run.data.params["data.task"]
        structures = ["vessels"] if task == "binary:vessels" else ["cerebrum", "vessels"]
        for structure in structures:
            cell = summary[
                (summary["variant"] == variant)
                & (summary["task"] == task)
                & (summary["class"] == structure)
                & (summary["metric"] == "dice")
            ]
            assert len(cell) == 1
            expected = run.data.metrics[f"test/dice_{structure}"]
            assert cell["mean"].iloc[0] == pytest.approx(expected, abs=1e-6)
    report = (in_tmp / "reports/tiny/report.md").read_text()
    # Every row trains the same network, and no run had weak labels.
    assert not (in_tmp / "reports/tiny/complexity.csv").exists()
    assert not (in_tmp / "reports/tiny/supervision.csv").exists()

    # Running again trains nothing and prints the same tables.
    assert ablate(study, phantom_manifest) == 0
    again = capsys.readouterr().out
    assert "4 already finished, 0 to run" in again
    assert len(child_runs()) == 4
    assert (in_tmp / "reports/tiny/report.md").read_text() == report

    # A killed variant resumes from its last checkpoint into its own run, and only it;
    # one left RUNNING is closed as KILLED first and resumed too.
    client = mlflow.MlflowClient(default_tracking_uri())
    client.set_terminated(runs[0].info.run_id, "KILLED")
    client.update_run(runs[1].info.run_id, status="RUNNING")
    assert ablate(study, phantom_manifest) == 0
    output = capsys.readouterr().out
    assert "marked 1 run(s) left RUNNING" in output
    assert "2 already finished, 2 to run" in output
    for run in runs[:2]:
        assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert len(child_runs()) == 4


@pytest.mark.slow
def test_a_failing_variant_is_recorded_and_the_others_run(in_tmp, phantom_manifest, capsys):
    grid = {
        "weighting": {
            "none": {"model.init_args.loss_weighting": "none"},
            "broken": {"model.init_args.loss_weighting": "nonsense"},
            "typo": {"data.augmentaton": "none"},
        }
    }
    assert ablate(write_ablation(in_tmp, grid), phantom_manifest) == 1
    runs = {r.data.tags["variant"]: r for r in child_runs()}
    assert runs["none"].info.status == "FINISHED"
    assert runs["broken"].info.status == "FAILED"
    assert "nonsense" in runs["broken"].data.tags["error"]
    assert runs["typo"].info.status == "FAILED"  # rejected by the parser, not by a class
    assert "augmentaton" in runs["typo"].data.tags["error"]
    assert "2 variant(s) failed" in capsys.readouterr().err
    # The tables of what finished are written, and say what they lack and why.
    report = (in_tmp / "reports" / "tiny" / "report.md").read_text()
    assert "2 of 3 variants have no finished run" in report
    assert "- `broken`: FAILED (" in report and "- `typo`: FAILED (" in report
    client = mlflow.MlflowClient(default_tracking_uri())
    parent = runs["none"].data.tags["mlflow.parentRunId"]
    grid_csv = pd.read_csv(client.download_artifacts(parent, "grid.csv", str(in_tmp)))
    grid_csv = grid_csv.set_index("variant")
    assert grid_csv["status"].to_dict() == {
        "none": "FINISHED",
        "broken": "FAILED",
        "typo": "FAILED",
    }
    # Each run's description in the UI says which variant it is and how it ended.
    notes = {name: run.data.tags[NOTE_TAG] for name, run in runs.items()}
    assert notes["broken"].startswith("Variant **broken** of ablation `tiny`")
    assert "`model.init_args.loss_weighting: nonsense`" in notes["broken"]
    assert "**Failed**: " in notes["broken"] and "nonsense" in notes["broken"].split("Failed")[1]
    dice = runs["none"].data.metrics["test/dice_mean"]
    assert f"**Test**: Dice mean {dice:.3f} (" in notes["none"]


@pytest.mark.slow
def test_sigterm_stops_the_grid_and_marks_runs_killed(in_tmp, phantom_manifest):
    grid = {
        "case": {
            "fine": {"model.init_args.loss_weighting": "none"},
            "terminated": {
                "trainer.callbacks": [{"class_path": "tests.helpers.SigtermOnTrainStart"}]
            },
            "never": {"model.init_args.loss_weighting": "focal"},
        }
    }
    assert ablate(write_ablation(in_tmp, grid), phantom_manifest) == 143
    runs = {r.data.tags.get("variant"): r.info.status for r in child_runs()}
    assert runs == {"fine": "FINISHED", "terminated": "KILLED"}
    client = mlflow.MlflowClient(default_tracking_uri())
    parent = client.search_runs(
        [client.get_experiment_by_name("tiny").experiment_id], "tags.ablation_role = 'parent'"
    )
    assert parent[0].info.status == "KILLED"


@pytest.mark.slow
def test_variants_can_train_side_by_side(in_tmp, phantom_manifest):
    grid = {"weighting": GRID["weighting"]}
    study = write_ablation(in_tmp, grid)
    status = main(
        ["ablate", str(study), "--profile", "smoke", "--data", str(phantom_manifest), "--jobs", "2"]
    )
    assert status == 0
    runs = child_runs()
    assert sorted(r.data.tags["variant"] for r in runs) == ["inverse", "none"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert (in_tmp / "reports/tiny/logs/none.log").stat().st_size > 0


def worker_state() -> tuple[int, bool, int, int]:
    """In a pool worker: torch threads, Lightning imported, frozen and collected objects."""
    import torch

    return (
        torch.get_num_threads(),
        "lightning.pytorch" in sys.modules,
        gc.get_freeze_count(),
        len(gc.get_objects()),
    )


def test_a_pool_worker_keeps_its_libraries_out_of_full_collections():
    context = get_context("spawn")  # as run_in_processes starts its workers
    with ProcessPoolExecutor(
        1, mp_context=context, initializer=start_worker, initargs=(1,)
    ) as pool:
        threads, imported, frozen, collected = pool.submit(worker_state).result()
    assert threads == 1
    assert imported
    # Torch, Lightning and MLflow are out of the collector's reach; what is left is small.
    assert frozen > 10 * collected


@pytest.mark.slow
def test_label_conditions_as_columns_tabulate_supervision_and_network_size(
    in_tmp, phantom_manifest
):
    small = {"depth": 2, "base_channels": 4}
    grid = {
        "network": {
            "fcn": {"model.init_args.network": "fcn", "model.init_args.network_options": small},
            "unet": {"model.init_args.network": "unet", "model.init_args.network_options": small},
        },
        "labels": {
            "full": {"data.weak_labels": None},
            "sparse_k2": {"data.weak_labels": ["sparse:2"]},
        },
    }
    study = write_ablation(in_tmp, grid)
    content = yaml.safe_load(study.read_text())
    content["tables"] = {
        "rows": ["network"],
        "columns": "labels",
        "sparsity": ["full", "sparse_k2"],
    }
    study.write_text(yaml.safe_dump(content, sort_keys=False))
    assert ablate(study, phantom_manifest) == 0

    runs = {r.data.tags["variant"]: r for r in child_runs()}
    sparse = runs["fcn-sparse_k2"].data.metrics
    assert sparse["weak_label/labelled_fraction"] == pytest.approx(0.5)
    assert sparse["weak_label/dice_vessels"] == 1.0
    assert not any(key.startswith("weak_label/") for key in runs["fcn-full"].data.metrics)
    assert runs["unet-full"].data.metrics["model/parameters"] > sparse["model/parameters"]

    reports = in_tmp / "reports/tiny"
    supervision = pd.read_csv(reports / "supervision.csv", index_col="task")
    assert supervision.loc["sparse_k2", "labelled_fraction"] == pytest.approx(0.5)
    assert supervision.loc["full", "labelled_fraction"] == 1.0
    complexity = pd.read_csv(reports / "complexity.csv", index_col="variant")
    assert complexity.loc["fcn", "macs"] == runs["fcn-full"].data.metrics["model/macs"]
    summary = pd.read_csv(reports / "summary.csv")
    assert set(summary["task"]) == {"full", "sparse_k2"}
    assert set(summary["variant"]) == {"fcn", "unet"}
    assert (reports / "dice_vs_labelled.png").stat().st_size > 0


def resolved_config(manifest: Path, capsys: pytest.CaptureFixture, *args: str) -> dict:
    """The resolved config ``versaseg ablate losses.yaml --print_config`` prints."""
    losses = Path(__file__).parents[1] / "experiments/ablations/losses.yaml"
    capsys.readouterr()
    command = ["ablate", str(losses), "--data", str(manifest), *args]
    if "--print_config" not in args:
        command.append("--print_config")
    assert main(command) == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_profile_budget_then_set_decide_over_the_study(in_tmp, phantom_manifest, capsys):
    paper = resolved_config(phantom_manifest, capsys, "--profile", "paper")
    assert paper["profile"] == "paper"
    assert paper["trainer"]["max_epochs"] == 200  # the paper protocol, not the study's 5
    assert paper["data"]["samples_per_volume"] == 64
    assert paper["data"]["patch_size"] == [128, 128]
    assert paper["trainer"]["precision"] == "bf16-mixed"
    # The study's methods hold under every profile.
    assert paper["model"]["init_args"]["network_options"] == {"depth": 4, "base_channels": 12}
    assert paper["data"]["test_fraction"] == 0.5
    quick = resolved_config(phantom_manifest, capsys, "--profile", "quick")
    assert quick["trainer"]["max_epochs"] == 5  # the study's budget in quick
    assert quick["trainer"]["log_every_n_steps"] == 4
    assert quick["data"]["patch_size"] == [64, 64]
    for profile in ("paper", "quick"):
        forced = resolved_config(
            phantom_manifest, capsys, "--profile", profile, "--set", "trainer.max_epochs=2"
        )
        assert forced["trainer"]["max_epochs"] == 2
    variant = resolved_config(phantom_manifest, capsys, "--print_config", "vessels-dice-dtm")
    assert variant["data"]["task"] == "binary:vessels"
    assert variant["data"]["distance_maps"] is True


def test_the_paper_profile_runs_the_loss_study_with_three_seeds(in_tmp, phantom_manifest):
    from experiments.ablate import AblationRunner

    losses = load_ablation(Path(__file__).parents[1] / "experiments/ablations/losses.yaml")
    runs = {
        profile: AblationRunner(losses, profile=profile, manifest=str(phantom_manifest)).variants
        for profile in ("quick", "paper")
    }
    assert {v.seed for v in runs["quick"]} == {42}
    assert {v.seed for v in runs["paper"]} == {42, 43, 44}
    assert len(runs["paper"]) == 3 * len(runs["quick"])
    assert "multiclass-ce-none-seed43" in {v.name for v in runs["paper"]}
    # --seeds decides last.
    chosen = AblationRunner(losses, profile="paper", manifest=str(phantom_manifest), seeds=[7])
    assert {v.seed for v in chosen.variants} == {7}


def test_set_is_part_of_the_variant_hash(in_tmp, phantom_manifest):
    from experiments.ablate import AblationRunner

    study = load_ablation(write_ablation(in_tmp))
    plain = AblationRunner(study, profile="smoke", manifest=str(phantom_manifest))
    changed = AblationRunner(
        study, profile="smoke", manifest=str(phantom_manifest), settings={"trainer.max_epochs": 2}
    )
    assert len({v.config_hash for v in plain.variants}) == 4
    assert not {v.config_hash for v in plain.variants} & {v.config_hash for v in changed.variants}
    assert plain.runs.scope_hash != changed.runs.scope_hash


@pytest.mark.parametrize(
    ("settings", "overrides", "message"),
    [
        ({"data.manifest": "other.csv"}, {}, "--set sets 'data.manifest', which comes from --data"),
        ({"seed_everything": 1}, {}, "comes from the file's `seeds` or --seeds"),
        ({"trainer.logger.init_args.tags": {}}, {}, "it tags every child run"),
        ({}, {"data.class_map": {1: "a"}}, "overrides sets 'data.class_map'"),
    ],
)
def test_keys_the_runner_sets_are_refused(in_tmp, phantom_manifest, settings, overrides, message):
    from experiments.ablate import AblationRunner

    path = write_ablation(in_tmp)
    study = yaml.safe_load(path.read_text())
    study["overrides"].update(overrides)
    path.write_text(yaml.safe_dump(study))
    with pytest.raises(AblationError, match=message):
        AblationRunner(
            load_ablation(path), profile="smoke", manifest=str(phantom_manifest), settings=settings
        )


def test_the_dataset_description_is_part_of_the_hash_and_the_parent(in_tmp, phantom_manifest):
    from experiments.ablate import AblationRunner

    study = load_ablation(write_ablation(in_tmp))
    described = yaml.safe_load((phantom_manifest.parent / "dataset.yaml").read_text())
    other = in_tmp / "no_thin.yaml"
    other.write_text(yaml.safe_dump({**described, "thin_structures": []}))
    plain = AblationRunner(study, profile="smoke", manifest=str(phantom_manifest))
    again = AblationRunner(study, profile="smoke", manifest=str(phantom_manifest))
    changed = AblationRunner(
        study, profile="smoke", manifest=str(phantom_manifest), dataset=str(other)
    )
    assert [v.config_hash for v in plain.variants] == [v.config_hash for v in again.variants]
    assert not {v.config_hash for v in plain.variants} & {v.config_hash for v in changed.variants}
    assert plain.runs.scope_hash != changed.runs.scope_hash


def test_a_mistyped_setting_stops_the_ablation_before_any_run(in_tmp, phantom_manifest, capsys):
    study = write_ablation(in_tmp)
    command = ["ablate", str(study), "--profile", "smoke", "--data", str(phantom_manifest)]
    assert main([*command, "--set", "trainer.max_epoch=2"]) == 2
    error = capsys.readouterr().err
    assert "ablation tiny: invalid configuration" in error and "max_epoch" in error
    client = mlflow.MlflowClient(default_tracking_uri())
    assert client.get_experiment_by_name("tiny") is None  # no parent, no child run


def test_hashes_that_look_like_numbers_stay_text_and_resume(
    in_tmp, phantom_manifest, monkeypatch, capsys
):
    # Read back as YAML, "289e263552684527" was inf and "0123" was 123: the variant
    # trained but was never found again, retrained on every rerun.
    numeric = {"none": "289e263552684527", "inverse": "0123456789012345"}
    monkeypatch.setattr(
        "experiments.ablate.config_hash", lambda ablation, variant, **_: numeric[variant.name]
    )
    grid = {"weighting": {name: {"model.init_args.loss_weighting": name} for name in numeric}}
    study = write_ablation(in_tmp, grid)
    assert ablate(study, phantom_manifest) == 0
    assert {r.data.tags["config_hash"] for r in child_runs()} == set(numeric.values())
    capsys.readouterr()
    assert ablate(study, phantom_manifest) == 0
    assert "2 already finished, 0 to run" in capsys.readouterr().out
    assert len(child_runs()) == 2
