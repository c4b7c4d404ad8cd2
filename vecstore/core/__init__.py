"""Numba kernels only: numpy arrays in, numpy arrays out; no I/O, no pyarrow, no logging."""
