"""Adapters that misbehave on purpose, to test that the bench runner records them and goes on."""

from __future__ import annotations

import os
import time

from bench.algorithms.exact_numpy import NumpyExact


class CrashOnWindow(NumpyExact):
    """Exact search that kills its own process on the first window query (as a segfault in C++ would)."""

    name = "crash-on-window"

    def filtered_query(self, q, k, predicate, mask):
        if type(predicate).__name__ == "Window":
            os.abort()
        return super().filtered_query(q, k, predicate, mask)


class HangOnBatch(NumpyExact):
    """Exact search whose batch call never returns."""

    name = "hang-on-batch"

    def batch_query(self, queries, k):
        time.sleep(3600)


class FailsToBuild(NumpyExact):
    name = "fails-to-build"

    def fit(self, dataset) -> None:
        raise MemoryError("out of memory while building")
