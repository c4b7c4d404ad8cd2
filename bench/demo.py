"""Demo: load the movies dataset into an embedded database and run filtered searches.

    python -m bench.demo [--data DIR] [--title "Star Wars"] [--filter "year < 1990"]

The query is the stored embedding of a movie title (no embedding model is downloaded).
"""

from __future__ import annotations

import argparse
import sys
import time

import vecstore
from bench.datasets import MOVIES_ATTRIBUTES, DatasetMissing, load_embedding_dataset

EXAMPLES = [
    ("Star Wars", "year < 1990"),
    ("Toy Story", "genres contains 'Animation' and year >= 1995"),
    ("Godfather, The", "rating >= 8 and votes > 10000"),
    ("Jaws", "year between 1970 and 1979 and not genres contains 'Comedy'"),
]
BATCH_ROWS = 20_000


def load_movies(db: vecstore.Database) -> vecstore.Collection:
    if "movies" in db.list_collections():
        return db.collection("movies")
    data = load_embedding_dataset("movies")
    col = db.create_collection("movies", dim=384, metric="cosine", attributes=MOVIES_ATTRIBUTES, window="year")
    started = time.perf_counter()
    n = data.vectors.shape[0]
    for start in range(0, n, BATCH_ROWS):
        batch = data.attributes.slice(start, BATCH_ROWS)
        col.upsert(
            batch.column("id"),
            data.vectors[start : start + BATCH_ROWS],
            {name: batch.column(name) for name in MOVIES_ATTRIBUTES},
        )
    col.seal()
    elapsed = time.perf_counter() - started
    print(f"loaded {n:,} movies in {elapsed:.1f} s ({n / elapsed:,.0f} rows/s)")
    return col


def show(col: vecstore.Collection, titles: list[str], title: str, filter_text: str | None) -> None:
    if title not in titles:
        print(f"\nno movie titled {title!r} (the IMDb sample puts articles last: 'Godfather, The')")
        return
    vector = col.get([titles.index(title)]).column("vector").to_pylist()[0]  # row i has id i
    started = time.perf_counter()
    res = col.search(vector, k=8, filter=filter_text, select=["title", "year", "rating", "genres"], explain=True)
    ms = (time.perf_counter() - started) * 1000
    matching = res.plan[0]["segments"]
    allowed = sum(s["allowed_rows"] for s in matching)
    print(f"\nnearest to {title!r} where {filter_text or 'true'}  ({allowed:,} rows match, {ms:.1f} ms)")
    for row in res.to_arrow().to_pylist():
        genres = ", ".join(row["genres"] or [])
        print(f"  {row['_distance']:.3f}  {row['title']} ({row['year']}, rating {row['rating']}) [{genres}]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="./data", help="database directory (default ./data)")
    parser.add_argument("--title", help="a movie title to use as the query")
    parser.add_argument("--filter", help='a filter expression, e.g. "year < 1990"')
    args = parser.parse_args(argv)
    try:
        with vecstore.connect(args.data) as db:
            col = load_movies(db)
            titles = load_embedding_dataset("movies").attributes.column("title").to_pylist()
            examples = [(args.title, args.filter)] if args.title else EXAMPLES
            for title, filter_text in examples:
                show(col, titles, title, filter_text)
    except (DatasetMissing, vecstore.VecstoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
