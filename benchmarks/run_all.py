"""``make bench``: every benchmark against its peer, in one table.

Runs, one after the other in this process, each benchmark's ``rows``:

1. ``framework_overhead``: the training step under Lightning / a hand-written loop;
2. ``data_wait``: the share of training time waiting for batches, 2D and 3D,
   ``num_workers`` 0 and 2;
3. ``inference_vs_monai``: whole-volume logits and time against MONAI's inferers;
4. ``time_to_dice``: time to MONAI's tutorial pipeline's best test Dice;
5. ``peak_memory``: peak resident memory of a quick 2D and 3D ``versaseg fit``;
6. ``memory_format``: training and inference in channels-last against PyTorch's
   default layout;

then prints one Markdown table (benchmark, goal, measured, met, detail) with the
machine and each part's seconds, and writes it to ``reports/bench/bench.md`` and
``bench.csv``. A benchmark that fails gets a row saying so; the others still run, and
the exit status is then 1. A goal not met is a finding, not a failure.

At full size on the 2-core development machine, nothing else running: about
40 + 85 + 45 + 230 + 35 + 65 s, 8 min 40 s in all on a slow day (``docs/performance.md``).

Run: .venv/bin/python benchmarks/run_all.py [--tiny] [--out reports/bench]
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

from benchmarks import (
    data_wait,
    framework_overhead,
    inference_vs_monai,
    memory_format,
    peak_memory,
    time_to_dice,
)
from benchmarks.bench_common import (
    ROOT,
    Row,
    isolate_tracking,
    machine,
    markdown_table,
    quiet,
    write_csv,
)

BENCHMARKS: tuple[ModuleType, ...] = (
    framework_overhead,
    data_wait,
    inference_vs_monai,
    time_to_dice,
    peak_memory,
    memory_format,
)


def run(module: ModuleType, tiny: bool, scratch: Path) -> list[Row]:
    """One benchmark's rows, or one row saying why it failed."""
    try:
        return module.rows(module.options(["--tiny"] if tiny else []), scratch)
    except Exception as error:  # one broken benchmark must not hide the others' figures
        traceback.print_exc()
        name = module.__name__.rsplit(".", 1)[-1]
        return [Row(f"{name}: failed", "runs", type(error).__name__, False, str(error)[:200])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: checks that all runs")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    options = parser.parse_args()
    quiet()
    scratch = isolate_tracking()
    rows: list[Row] = []
    seconds: list[str] = []
    started = time.perf_counter()
    for module in BENCHMARKS:
        name = module.__name__.rsplit(".", 1)[-1]
        print(f"== {name}", flush=True)
        part = time.perf_counter()
        rows += run(module, options.tiny, scratch)
        seconds.append(f"{name} {time.perf_counter() - part:.0f} s")
    total = time.perf_counter() - started
    size = "tiny sizes: a check that everything runs, not figures" if options.tiny else "full size"
    report = "\n".join(
        [
            "# make bench: against a hand-written loop and MONAI",
            "",
            f"machine: {machine()}",
            f"run: {time.strftime('%Y-%m-%d %H:%M')}, {size}; {', '.join(seconds)}; "
            f"total {total:.0f} s",
            "",
            markdown_table(rows),
            "",
        ]
    )
    print(f"\n{report}")
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "bench.md").write_text(report)
    write_csv(rows, options.out / "bench.csv")
    print(f"Wrote {options.out / 'bench.md'} and {options.out / 'bench.csv'}")
    if any(row.benchmark.endswith(": failed") for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
