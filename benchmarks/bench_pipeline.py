"""Measure the pipeline through Kafka against the raw aiokafka client limit.

Run: ``python benchmarks/bench_pipeline.py [pivotwatch bench options]``

The broker is the one named by ``--bootstrap``, else by the environment variable
``PIVOTWATCH_BENCH_BOOTSTRAP`` (``make bench`` sets it when it starts Apache Kafka),
else the embedded broker. The correlator-only figures are left to
``bench_correlator.py``; pass ``--core`` to print them here too. See
docs/benchmarks.md for the method.
"""

from __future__ import annotations

import os
import sys

from pivotwatch.cli.bench import bench_command


def main() -> None:
    arguments = sys.argv[1:]
    bootstrap = os.environ.get("PIVOTWATCH_BENCH_BOOTSTRAP")
    if bootstrap and "--bootstrap" not in arguments:
        arguments = ["--bootstrap", bootstrap, *arguments]
    if "--core" not in arguments:
        arguments = ["--no-core", *arguments]
    bench_command.main(arguments, prog_name="bench_pipeline.py")


if __name__ == "__main__":
    main()
