"""The ``vecstore`` command: run the server, and manage collections on one from the shell.

Settings come from flags, then ``VECSTORE_*`` environment variables, then a TOML file given with
``--config`` (its keys are the flag names with underscores, e.g. ``max_message_mb = 128``).
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

import vecstore
from server.app import DEFAULT_PORT, ServerConfig, serve

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


def _load_config(ctx: typer.Context, path: Path | None) -> Path | None:
    """Eager --config: its values become the defaults that flags and environment variables override."""
    if path is None:
        return None
    try:
        values = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise typer.BadParameter(f"cannot read config file {path}: {exc}") from None
    ctx.default_map = {**(ctx.default_map or {}), **values}
    return path


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", help="TOML file of settings", is_eager=True, callback=_load_config, envvar="VECSTORE_CONFIG"
    ),
]
AddressOption = Annotated[str, typer.Option(help="server address host:port", envvar="VECSTORE_ADDRESS")]
TokenOption = Annotated[str | None, typer.Option(help="bearer token", envvar="VECSTORE_TOKEN")]
DataOption = Annotated[
    Path | None, typer.Option(help="use an embedded database in DIR instead of a server", envvar="VECSTORE_DATA")
]


@app.command("serve")
def serve_command(
    config: ConfigOption = None,
    data: Annotated[Path, typer.Option(help="database directory", envvar="VECSTORE_DATA")] = Path("./data"),
    host: Annotated[str, typer.Option(help="address to listen on", envvar="VECSTORE_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="gRPC port (0: any free port)", envvar="VECSTORE_PORT")] = DEFAULT_PORT,
    token: Annotated[str | None, typer.Option(help="read-write bearer token", envvar="VECSTORE_TOKEN")] = None,
    read_only_token: Annotated[
        str | None, typer.Option(help="read-only bearer token", envvar="VECSTORE_READ_ONLY_TOKEN")
    ] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate", envvar="VECSTORE_TLS_CERT")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key", envvar="VECSTORE_TLS_KEY")] = None,
    max_message_mb: Annotated[
        int, typer.Option(help="largest request or reply", envvar="VECSTORE_MAX_MESSAGE_MB")
    ] = 256,
    workers: Annotated[int, typer.Option(help="concurrent RPCs", envvar="VECSTORE_WORKERS")] = 8,
    metrics_port: Annotated[
        int | None, typer.Option(help="loopback port for Prometheus /metrics", envvar="VECSTORE_METRICS_PORT")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning", envvar="VECSTORE_LOG_LEVEL")] = "info",
) -> None:
    """Run the gRPC server until SIGTERM / Ctrl-C (then drain in-flight calls and close cleanly)."""
    from server.logs import configure

    configure(log_level)
    settings = ServerConfig(
        data=data,
        host=host,
        port=port,
        token=token,
        read_only_token=read_only_token,
        tls_cert=tls_cert,
        tls_key=tls_key,
        max_message_bytes=max_message_mb << 20,
        workers=workers,
        metrics_port=metrics_port,
    )
    try:
        serve(settings)
    except vecstore.VecstoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _open(address: str, token: str | None, data: Path | None) -> Any:
    return vecstore.connect(data) if data is not None else vecstore.Client(address, token=token)


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


@app.command()
def create(
    name: str,
    dim: Annotated[int, typer.Option(help="vector dimension")],
    metric: Annotated[str, typer.Option(help="l2, ip or cosine")] = "cosine",
    attribute: Annotated[list[str] | None, typer.Option("--attribute", "-a", help="name:type, repeatable")] = None,
    window: Annotated[str | None, typer.Option(help="attribute window filters run on fastest")] = None,
    config: ConfigOption = None,
    address: AddressOption = f"127.0.0.1:{DEFAULT_PORT}",
    token: TokenOption = None,
    data: DataOption = None,
) -> None:
    """Create a collection, e.g. ``vecstore create movies --dim 384 -a year:int64 -a genres:list<string>``."""
    attributes = {}
    for spec in attribute or []:
        field_name, sep, type_name = spec.partition(":")
        if not sep:
            _fail(vecstore.InvalidArgument(f"attribute {spec!r} must be name:type, e.g. year:int64"))
        attributes[field_name] = type_name
    try:
        db = _open(address, token, data)
        db.create_collection(name, dim=dim, metric=metric, attributes=attributes, window=window)
        typer.echo(f"created {name}")
    except vecstore.VecstoreError as exc:
        _fail(exc)


def _read_rows(path: Path, id_column: str, vector_column: str) -> Any:
    """A pyarrow Table from Parquet / Arrow IPC, or ids + vectors from a .npy file of vectors."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        raise vecstore.InvalidArgument(f"{path} is not a file; give the path of a .parquet, .arrow or .npy file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        vectors = np.load(path, mmap_mode="r")
        ids = pa.array(np.arange(vectors.shape[0], dtype=np.int64))
        flat = pa.array(np.asarray(vectors, dtype=np.float32).ravel())
        return pa.table({"id": ids, "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])})
    if suffix == ".parquet":
        table = pq.read_table(path)
    elif suffix in (".arrow", ".feather", ".ipc"):
        table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
    else:
        raise vecstore.InvalidArgument(f"cannot load {path.name}: use .parquet, .arrow/.feather/.ipc or .npy")
    renames = {id_column: "id", vector_column: "vector"}
    return table.rename_columns([renames.get(n, n) for n in table.column_names])


@app.command()
def load(
    name: str,
    path: Path,
    batch_rows: Annotated[int, typer.Option(help="rows per upsert (each one atomic and durable)")] = 10_000,
    id_column: Annotated[str, typer.Option(help="column holding the ids")] = "id",
    vector_column: Annotated[str, typer.Option(help="column holding the vectors")] = "vector",
    config: ConfigOption = None,
    address: AddressOption = f"127.0.0.1:{DEFAULT_PORT}",
    token: TokenOption = None,
    data: DataOption = None,
) -> None:
    """Load a Parquet / Arrow file (id, vector and attribute columns) or a .npy of vectors, in batches."""
    from tqdm import tqdm

    try:
        table = _read_rows(path, id_column, vector_column)
        col = _open(address, token, data).collection(name)
        declared = set(col.describe()["attributes"])
        table = table.select([n for n in table.column_names if n in declared or n in ("id", "vector")])
        with tqdm(total=table.num_rows, unit="rows", desc=f"loading {name}") as progress:
            for start in range(0, table.num_rows, batch_rows):
                progress.update(col.upsert(table.slice(start, batch_rows)))
    except vecstore.VecstoreError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(OSError(f"cannot read {path}: {exc}"))


@app.command()
def search(
    name: str,
    vector: Annotated[str | None, typer.Option(help="comma-separated query vector")] = None,
    like_id: Annotated[int | None, typer.Option(help="use the stored vector of this id as the query")] = None,
    filter: Annotated[str | None, typer.Option(help="filter expression")] = None,
    k: Annotated[int, typer.Option(help="number of neighbours")] = 10,
    select: Annotated[list[str] | None, typer.Option("--select", "-s", help="attribute to show, repeatable")] = None,
    explain: Annotated[bool, typer.Option(help="print the plan")] = False,
    config: ConfigOption = None,
    address: AddressOption = f"127.0.0.1:{DEFAULT_PORT}",
    token: TokenOption = None,
    data: DataOption = None,
) -> None:
    """Nearest neighbours of a vector (or of a stored row) under a filter, as a table."""
    try:
        col = _open(address, token, data).collection(name)
        if (vector is None) == (like_id is None):
            raise vecstore.InvalidArgument("give exactly one of --vector or --like-id")
        if vector is not None:
            try:
                query = np.array([float(x) for x in vector.split(",")], dtype=np.float32)
            except ValueError:
                raise vecstore.InvalidArgument("--vector must be numbers separated by commas") from None
        else:
            found = col.get([like_id])
            if found.num_rows == 0:
                raise vecstore.NotFound(f"no row with id {like_id} in {name}")
            query = np.asarray(found.column("vector").to_pylist()[0], dtype=np.float32)
        result = col.search(query, k=k, filter=filter, select=select, explain=explain)
    except vecstore.VecstoreError as exc:
        _fail(exc)
    table = result.to_arrow().drop_columns(["query"])
    typer.echo(table.to_pandas().to_string(index=False) if table.num_rows else "no rows match")
    if explain:
        typer.echo(json.dumps(result.plan[0], indent=2))


@app.command()
def stats(
    name: Annotated[str | None, typer.Argument(help="collection (all when left out)")] = None,
    config: ConfigOption = None,
    address: AddressOption = f"127.0.0.1:{DEFAULT_PORT}",
    token: TokenOption = None,
    data: DataOption = None,
) -> None:
    """Rows, segments and bytes of a collection (or the list of collections)."""
    try:
        db = _open(address, token, data)
        if name is None:
            typer.echo("\n".join(db.list_collections()) or "no collections")
            return
        typer.echo(json.dumps(db.collection(name).describe(), indent=2, default=str))
    except vecstore.VecstoreError as exc:
        _fail(exc)


if __name__ == "__main__":
    sys.exit(app())
