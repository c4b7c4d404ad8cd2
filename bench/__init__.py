"""Benchmarks and demos on the real datasets in ../shared/data."""
