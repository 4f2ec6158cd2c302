"""PerformanceRecorder: data-wait share and step time from the loop's hook times."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lightning_modules import performance
from lightning_modules.performance import PerformanceRecorder


def test_wait_share_and_step_time_follow_the_hook_times(monkeypatch: pytest.MonkeyPatch) -> None:
    # init, epoch start, then (start, end) of two steps: waits 1 + 0.5, computes 2 + 2.
    clock = iter([0.0, 0.0, 1.0, 3.0, 3.5, 5.5])
    monkeypatch.setattr(performance.time, "perf_counter", lambda: next(clock))
    logged: dict[str, float] = {}
    module = SimpleNamespace(
        device=torch.device("cpu"), log=lambda name, value, **_: logged.__setitem__(name, value)
    )
    recorder = PerformanceRecorder()
    recorder.on_train_epoch_start(None, module)
    for step in range(2):
        recorder.on_train_batch_start(None, module, None, step)
        recorder.on_train_batch_end(None, module, None, None, step)
    recorder.on_train_epoch_end(None, module)
    assert logged["perf/data_wait_share"] == pytest.approx(1.5 / 5.5)
    assert logged["perf/step_seconds"] == pytest.approx(5.5 / 2)
    assert logged["perf/peak_memory_gib"] > 0
    assert "perf/peak_gpu_memory_gib" not in logged  # no GPU here


def test_an_epoch_without_steps_logs_nothing() -> None:
    logged: list[str] = []
    module = SimpleNamespace(
        device=torch.device("cpu"), log=lambda name, *_, **__: logged.append(name)
    )
    recorder = PerformanceRecorder()
    recorder.on_train_epoch_start(None, module)
    recorder.on_train_epoch_end(None, module)
    assert logged == []
