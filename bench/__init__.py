"""Benchmarks. Run each from the repository root as a module, e.g.
``python -m bench.closed_loop``; each prints a table."""
