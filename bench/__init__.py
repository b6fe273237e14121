"""Benchmarks anyone can run: `python -m bench.<name>`; results go to bench/results/*.json."""
