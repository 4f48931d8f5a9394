"""Load generation and benchmarks of the pipeline; see docs/benchmarks.md."""
