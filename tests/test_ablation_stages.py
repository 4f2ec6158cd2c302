"""Two-stage ablation variants: which layer goes to which stage, hashes, refusals, print_config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from experiments.ablate import AblationRunner
from experiments.ablation_file import AblationError, load_ablation
from experiments.cli import main

CLEANSING = Path(__file__).resolve().parents[1] / "experiments" / "ablations" / "cleansing.yaml"


def runner(manifest: Path, **options) -> AblationRunner:
    return AblationRunner(load_ablation(CLEANSING), manifest=str(manifest), **options)


def test_stage_layers_split_data_and_stage1_keys_from_the_rest(in_tmp, phantom_manifest):
    study = runner(phantom_manifest, settings={"stage1.trainer.max_epochs": 3, "data.x": 1})
    variant = study.variant("sparse_k4-complementary")
    first, second = study._layers(variant, 1), study._layers(variant, 2)
    assert first["method"]["data.weak_labels"] == ["sparse:4"]
    assert first["method"]["model.init_args.selection.folds"] == 2
    assert first["method"]["method"] == "network"
    assert first["budget"]["trainer.max_epochs"] == 8  # the study's stage-1 budget in quick
    assert first["settings"] == {"trainer.max_epochs": 3, "data.x": 1}
    assert second["method"]["data.weak_labels"] is None  # stage 2 trains on stage 1's labels
    assert not any(key.startswith("stage1.") for layer in second.values() for key in layer)
    assert second["budget"]["trainer.max_epochs"] == 6
    assert second["settings"] == {"data.x": 1}
    ignore = study.variant("sparse_k4-ignore")
    assert study.stage1_plan(ignore) is None
    assert study._layers(ignore, 2)["method"]["data.weak_labels"] == ["sparse:4"]


def test_stage1_hash_follows_what_stage1_reads(in_tmp, phantom_manifest):
    plain = runner(phantom_manifest)
    stage2_only = runner(phantom_manifest, settings={"model.init_args.loss": "ce"})
    stage1_too = runner(phantom_manifest, settings={"stage1.trainer.max_epochs": 3})
    data = runner(phantom_manifest, settings={"data.split_seed": 1})
    name = "sparse_k4-cleansing"
    hashes = [r.stage1_plan(r.variant(name)).stage_hash for r in (plain, stage2_only)]
    assert hashes[0] == hashes[1]  # a stage-2 setting reuses stage 1
    assert stage1_too.stage1_plan(stage1_too.variant(name)).stage_hash != hashes[0]
    assert data.stage1_plan(data.variant(name)).stage_hash != hashes[0]
    # Each (condition, method) has its own stage 1, in its own folder.
    plans = [plain.stage1_plan(v) for v in plain.variants]
    folders = [plan.output for plan in plans if plan is not None]
    assert len(folders) == len(set(folders)) == 6 * 6


def test_the_upper_bound_is_one_run_for_every_condition(in_tmp, phantom_manifest):
    study = runner(phantom_manifest)
    truth = [v for v in study.variants if v.axes["method"] == "truth"]
    assert len(truth) == 6 and len({v.config_hash for v in truth}) == 1
    assert len({v.config_hash for v in study.variants}) == 48 - 5


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"stage1.data.manifest": "x.csv"}, "'stage1.data.manifest', which comes from --data"),
        ({"stage1.seed_everything": 3}, "comes from the file's `seeds`"),
    ],
)
def test_runner_keys_are_refused_for_stage1_too(in_tmp, phantom_manifest, settings, message):
    with pytest.raises(AblationError, match=message):
        runner(phantom_manifest, settings=settings)


def test_stage1_keys_need_a_study_with_a_stage1(in_tmp, phantom_manifest):
    losses = CLEANSING.parent / "losses.yaml"
    with pytest.raises(AblationError, match="the study has no stage 1"):
        AblationRunner(
            load_ablation(losses),
            manifest=str(phantom_manifest),
            settings={"stage1.trainer.max_epochs": 2},
        )
    study = yaml.safe_load(CLEANSING.read_text())
    del study["stage1"]
    path = in_tmp / "no_stage1.yaml"
    path.write_text(yaml.safe_dump(study))
    with pytest.raises(AblationError, match=r"set stage1 keys, but the file has no `stage1"):
        load_ablation(path)
    study["stage1"] = {"config": "experiments/configs/missing.yaml"}
    path.write_text(yaml.safe_dump(study))
    with pytest.raises(AblationError, match=r"stage1 config .*missing\.yaml does not exist"):
        load_ablation(path)


def test_print_config_shows_both_stages(in_tmp, phantom_manifest, capsys):
    command = ["ablate", str(CLEANSING), "--data", str(phantom_manifest), "--profile", "paper"]
    assert main([*command, "--print_config", "noisy_mild-complementary"]) == 0
    out = capsys.readouterr().out
    first, second = out.split("# stage 2: trains on ")
    first = yaml.safe_load(first.split("\n", 1)[1])
    second = yaml.safe_load(second.split("\n", 1)[1])
    assert first["model"]["class_path"].endswith("LabelCleansingModule")
    assert first["model"]["init_args"]["selection"]["folds"] == 2
    assert first["data"]["weak_labels"] == ["noisy:mild"]
    assert first["trainer"]["max_epochs"] == 200  # the paper profile, in both stages
    assert second["model"]["class_path"].endswith("SegmentationModule")
    assert second["data"]["weak_labels"] is None
    assert second["trainer"]["max_epochs"] == 200
