"""Window-tree geometry in Numba: which bucket of a sorted segment holds a window of rows, and which
graph (bucket or straddle bucket) a postfilter of that window searches.

The planner asks both for every window query on a segment with a window tree. In Python the two
cost about 3.3 us a query (20k rows, beta 4, 25% windows), several times the rest of pricing the
tree's options; one call here costs a few hundred nanoseconds.

Layout (``vecstore.index.window_tree``): bucket i of level l spans rows [i n / beta^l, (i + 1) n /
beta^l) (floor division). A straddle bucket of level l is either one of the ``2 beta^l - 2`` shorter
ones, half buckets j .. j + 2 ([j n / h, (j + 3) n / h) with h = 2 beta^l), or a pair, buckets i and
i + 1, numbered ``h - 2 + i`` (with beta 2 only odd i: pairs across parents). A tree spans fewer than
2^31 rows (its graphs number their nodes in int32), so every product here fits in int64.
"""

from __future__ import annotations

from numba import njit


@njit(nogil=True, cache=True)
def bucket_span(n, beta, level, number):
    """Rows [start, stop) of bucket ``number`` of ``level``: children split their parent exactly."""
    width = beta**level
    return number * n // width, (number + 1) * n // width


@njit(nogil=True, cache=True)
def straddle_span(n, beta, level, number):
    """Rows [start, stop) of straddle bucket ``number`` of ``level``: half buckets number .. number + 2,
    or from ``2 beta^level - 2`` on, buckets i and i + 1 joined (bounds round as the buckets' do)."""
    halves = 2 * beta**level
    if number < halves - 2:
        return number * n // halves, (number + 3) * n // halves
    first = number - (halves - 2)
    return bucket_span(n, beta, level, first)[0], bucket_span(n, beta, level, first + 1)[1]


@njit(nogil=True, cache=True)
def joins_pair(beta, parts, first):
    """Whether buckets ``first`` and ``first + 1`` of a level of ``parts`` buckets get a joined straddle:
    with beta 2 only across parents (two children of one parent would be the parent again)."""
    return first < parts - 1 and (beta > 2 or first % 2 == 1)


@njit(nogil=True, cache=True)
def part_of(n, parts, row):
    """Which of ``parts`` equal-count parts of ``n`` rows (floor(i n / parts)) holds ``row``."""
    number = row * parts // n  # up to rounding
    while (number + 1) * n // parts <= row:
        number += 1
    while number * n // parts > row:
        number -= 1
    return number


@njit(nogil=True, cache=True)
def holder(n, beta, depth, lo, hi):
    """(level, number) of the deepest bucket holding rows [lo, hi) entirely; (0, 0) is the root."""
    level, number = 0, 0
    for deeper in range(1, depth + 1):
        candidate = part_of(n, beta**deeper, lo)
        if hi > bucket_span(n, beta, deeper, candidate)[1]:
            break
        level, number = deeper, candidate
    return level, number


@njit(inline="always")
def _fewer_rows(n, beta, level, number, lo, hi, found_rows, found_number):
    """``(rows, number)`` of straddle bucket ``number`` of ``level`` when it holds [lo, hi) with fewer
    rows than the one found so far (``found_rows`` -1: none yet); that one's otherwise."""
    start, stop = straddle_span(n, beta, level, number)
    if start <= lo and hi <= stop and (found_rows < 0 or stop - start < found_rows):
        return stop - start, number
    return found_rows, found_number


@njit(nogil=True, cache=True)
def holders(n, beta, depth, straddle_levels, lo, hi):
    """``(holder level, holder number, level, number, straddle, rows)``: the deepest bucket holding rows
    [lo, hi) (``holder``), then the fewest-row graph holding them: that bucket, or a straddle bucket
    of one of the top ``straddle_levels`` levels (at most ``depth``), on a tie the bucket.

    A straddle of a level below the holder's is smaller than the holder, and the deepest level's
    holding the rows the smallest, so the search stops at the deepest level with one. Of one level,
    the shorter straddles holding the rows start in the half bucket holding lo or one of the two before
    it (their row counts differ by rounding); the pair holding them starts with lo's bucket."""
    held_level, held_number = holder(n, beta, depth, lo, hi)
    start, stop = bucket_span(n, beta, held_level, held_number)
    rows = stop - start
    level, number, straddle = held_level, held_number, False
    for below in range(straddle_levels, held_level, -1):
        parts = beta**below
        halves = 2 * parts
        last = min(part_of(n, halves, lo), halves - 3)
        found_rows, found_number = -1, -1
        # the shorter ones, then the pair after them: ascending numbers, so a tie keeps the lower one
        for shorter in range(max(0, last - 2), last + 1):
            found_rows, found_number = _fewer_rows(n, beta, below, shorter, lo, hi, found_rows, found_number)
        pair = part_of(n, parts, lo)
        if joins_pair(beta, parts, pair):
            found_rows, found_number = _fewer_rows(n, beta, below, halves - 2 + pair, lo, hi, found_rows, found_number)
        if found_rows >= 0:
            if found_rows < rows:
                level, number, straddle, rows = below, found_number, True, found_rows
            break
    return held_level, held_number, level, number, straddle, rows
