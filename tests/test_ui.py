"""The MLflow UI as a person sees it: `versaseg ui` over a smoke ablation, in headless Chromium.

The store holds a two-variant ablation in the ``losses`` experiment and a baseline
fit. The test opens the addresses that ``versaseg ui`` prints and asserts on the
pages' text; screenshots go to ``reports/ui/`` of the checkout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import yaml

from experiments.cli import main
from experiments.mlflow_ui import (
    EXPERIMENT_KIND_TAG,
    MODEL_TRAINING,
    NOTE_TAG,
    VIEW_TAG,
    describe_experiment,
    thread,
)
from experiments.tracking import default_tracking_uri
from tests.browser import chromium, click_text, open_page, screenshot, wait_for_text
from tests.conftest import BASELINE
from tests.servers import free_port, wait_until_healthy

SCREENSHOTS = Path(__file__).resolve().parents[1] / "reports" / "ui"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, phantom_manifest: Path) -> Iterator[Path]:
    """A folder whose ``mlruns/`` holds a smoke ablation (``losses``) and a baseline fit."""
    folder = tmp_path_factory.mktemp("ui")
    previous = Path.cwd()
    uri = os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.chdir(folder)
    try:
        study = {
            "name": "tiny",
            "experiment": "losses",
            "config": str(BASELINE),
            "seeds": [3],
            "overrides": {"model.init_args.loss": "ce", "model.init_args.loss_options": {}},
            "grid": {
                "weighting": {
                    "none": {"model.init_args.loss_weighting": "none"},
                    "inverse": {"model.init_args.loss_weighting": "inverse"},
                }
            },
        }
        Path("tiny.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
        arguments = ["--profile", "smoke", "--data", str(phantom_manifest)]
        assert main(["ablate", "tiny.yaml", *arguments]) == 0
        fit = ["fit", "--config", str(BASELINE), "--profile", "smoke"]
        assert (
            main([*fit, "--data.manifest", str(phantom_manifest), "--test_after_fit", "true"]) == 0
        )
        yield folder
    finally:
        os.chdir(previous)
        if uri is not None:
            os.environ["MLFLOW_TRACKING_URI"] = uri


@pytest.fixture(scope="module")
def ui(store: Path) -> Iterator[tuple[str, str]]:
    """``versaseg ui`` serving ``store`` on a free port: (base address, what it printed)."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    versaseg = Path(sys.executable).parent / "versaseg"
    # To a file, not a pipe: the server logs every request, and an unread pipe fills.
    log = store / "ui.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [str(versaseg), "ui", "--port", str(port)],
            cwd=store,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its workers go with it on teardown
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, server, log)
        # What it printed before becoming the server.
        yield base, log.read_text()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def address(printed: str, label: str) -> str:
    """The URL on the line of ``versaseg ui``'s output that holds ``label``."""
    lines = printed.splitlines()
    for index, line in enumerate(lines):
        if label in line:
            words = line.split() if "http" in line else lines[index + 1].split()
            return next(word for word in words if word.startswith("http"))
    raise AssertionError(f"no {label!r} in:\n{printed}")


def test_the_ui_shows_threads_ablation_tree_and_pictures(store: Path, ui: tuple[str, str]):
    base, printed = ui
    assert "bound to 127.0.0.1 (this machine only)" in printed
    client = mlflow.MlflowClient(f"sqlite:///{store / 'mlruns/mlflow.db'}")
    parent = client.search_runs(
        [client.get_experiment_by_name("losses").experiment_id], "tags.ablation_role = 'parent'"
    )[0]
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(r.info.run_name for r in children) == ["inverse", "none"]
    assert address(printed, "parent run").endswith(
        f"/runs/{parent.info.run_id}?" + ("workflowType=machine_learning")
    )

    with chromium() as browser:
        # The experiments list: each thread with its description.
        open_page(browser, address(printed, "experiments:"))
        wait_for_text(browser, "losses", thread("losses").holds[:40], "baseline")
        wait_for_text(browser, thread("baseline").holds[:40])
        close_assistant(browser)
        screenshot(browser, SCREENSHOTS / "experiments.png")

        # The ablation: training runs (not traces), children under their parent.
        open_page(browser, address(printed, "latest ablation"))
        text = wait_for_text(browser, "tiny-smoke", "Run Name", "test/dice_mean", "axis.weighting")
        assert "Latency" not in text and "Traces\n0" not in text
        assert "inverse" not in text.split("tiny-smoke")[1].split("matching runs")[0]
        expand = browser.find_element(
            "xpath",
            "//span[starts-with(@id, 'cell-attributes.`Run Name`')]"
            "[.//span[normalize-space(text())='tiny-smoke']]//button",
        )
        expand.click()
        text = wait_for_text(browser, "none", "inverse")
        rows = text[text.index("tiny-smoke") :]
        assert rows.index("tiny-smoke") < rows.index("inverse") and "none" in rows
        screenshot(browser, SCREENSHOTS / "ablation_runs.png")

        # A child: its prediction overlay and training curves open as images.
        child = children[0]
        page = f"{base}/#/experiments/{child.info.experiment_id}/runs/{child.info.run_id}"
        open_page(browser, f"{page}?workflowType=machine_learning")
        wait_for_text(browser, f"Variant {child.info.run_name} of ablation", "Dice mean")
        open_page(browser, f"{page}/artifacts?workflowType=machine_learning")
        click_text(browser, "figures")
        text = wait_for_text(browser, "training_curves.png", "prediction_")
        prediction = next(line for line in text.splitlines() if line.startswith("prediction_"))
        assert prediction.endswith(".png")
        click_text(browser, prediction)
        wait_for_text(browser, f"figures/{prediction}")
        screenshot(browser, SCREENSHOTS / "child_prediction.png", settle=2)

        # The parent: its report, tables and figures.
        open_page(
            browser,
            base + f"/#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}"
            "/artifacts?workflowType=machine_learning",
        )
        wait_for_text(browser, "report.md", "tables", "figures", "grid.csv")
        click_text(browser, "report.md")
        wait_for_text(browser, "Ablation tiny (profile smoke)", "Ranking")
        screenshot(browser, SCREENSHOTS / "ablation_parent.png", settle=2)


def close_assistant(browser) -> None:
    """Close MLflow's assistant panel, which opens on a first visit and hides the page."""
    for button in browser.find_elements("xpath", "//button[@aria-label='Close']"):
        if button.is_displayed():
            button.click()


def test_every_experiment_is_model_training_with_a_description(store: Path):
    client = mlflow.MlflowClient(f"sqlite:///{store / 'mlruns/mlflow.db'}")
    for name in ("losses", "baseline"):
        tags = client.get_experiment_by_name(name).tags
        assert tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING
        assert tags[NOTE_TAG].startswith(f"{name}: {thread(name).holds}")
    columns = json.loads(client.get_experiment_by_name("losses").tags[VIEW_TAG])
    assert columns["selectedColumns"][0] == "tags.`axis.weighting`"
    assert "metrics.`test/dice_mean`" in columns["selectedColumns"]
    baseline = client.search_runs([client.get_experiment_by_name("baseline").experiment_id])[0]
    note = baseline.data.tags[NOTE_TAG]
    assert note.startswith("A `fit` run of the **baseline** thread")
    dice = baseline.data.metrics["test/dice_mean"]
    assert f"**Test**: Dice mean {dice:.3f}" in note


def test_a_written_description_is_kept_and_axes_accumulate(in_tmp):
    client = mlflow.MlflowClient(default_tracking_uri())
    experiment = client.create_experiment("mine")
    client.set_experiment_tag(experiment, NOTE_TAG, "my own words")
    describe_experiment(client, experiment, ["a"])
    describe_experiment(client, experiment, ["b"])
    tags = client.get_experiment(experiment).tags
    assert tags[NOTE_TAG] == "my own words"
    assert tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING
    assert json.loads(tags[VIEW_TAG])["selectedColumns"] == [
        "tags.`axis.a`",
        "tags.`axis.b`",
        "metrics.`test/dice_mean`",
    ]
