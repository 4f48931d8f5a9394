"""Measure the correlator core without Kafka: events/s, state per identity, RSS over a soak.

Run: ``python benchmarks/bench_correlator.py [--core-records N] [--soak-seconds S]``

The same figures are part of ``pivotwatch bench``; see docs/benchmarks.md.
"""

from __future__ import annotations

import sys

from pivotwatch.cli.bench import bench_command


def main() -> None:
    bench_command.main(["--no-kafka", *sys.argv[1:]], prog_name="bench_correlator.py")


if __name__ == "__main__":
    main()
