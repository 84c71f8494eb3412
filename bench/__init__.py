"""Benchmarks: `python -m bench` runs every module here that has a `main()`; `python -m bench NAME` runs one.

Figures are printed, never asserted: speed targets are measured here, not in timed unit tests.
"""
