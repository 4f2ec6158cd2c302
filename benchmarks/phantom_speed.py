"""Seconds per phantom subject at the default size: generation alone and generation plus writing.

Run: .venv/bin/python benchmarks/phantom_speed.py [--subjects 8]
Record the numbers in docs/performance.md with the machine they came from.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import numpy as np

from datamodules.phantom import generate_subject, write_phantom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=8)
    options = parser.parse_args()

    generate_subject(np.random.default_rng([0, 0]))  # warm-up: imports and caches
    generation = []
    for index in range(options.subjects):
        start = time.perf_counter()
        generate_subject(np.random.default_rng([0, index]))
        generation.append(time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        write_phantom(folder, options.subjects, seed=0)
        writing = (time.perf_counter() - start) / options.subjects

    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {os.cpu_count()} cores")
    print(
        f"generate_subject (96x96x64): median {statistics.median(generation):.3f} s, "
        f"max {max(generation):.3f} s over {options.subjects} subjects"
    )
    print(f"write_phantom incl. NIfTI gzip: {writing:.3f} s per subject")


if __name__ == "__main__":
    main()
