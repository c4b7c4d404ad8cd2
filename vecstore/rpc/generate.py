"""Generate the protobuf / gRPC modules of this package from ``proto/vecstore/v1/vecstore.proto``.

    python -m vecstore.rpc.generate          # rewrite vecstore/rpc/vecstore_pb2*.py
    python -m vecstore.rpc.generate --check  # exit 1 if the committed modules are stale

Needs grpcio-tools (a test dependency); the generated modules only need grpcio and protobuf.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROTO_ROOT = PACKAGE_DIR.parent.parent / "proto"
PROTO_FILE = "vecstore/v1/vecstore.proto"
OUTPUTS = ("vecstore_pb2.py", "vecstore_pb2.pyi", "vecstore_pb2_grpc.py")


def render() -> dict[str, str]:
    """Run protoc into a scratch folder and return the modules as they belong in this package."""
    from grpc_tools import protoc  # imported here: only the generator needs grpcio-tools

    with tempfile.TemporaryDirectory() as scratch:
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={scratch}",
            f"--pyi_out={scratch}",
            f"--grpc_python_out={scratch}",
            str(PROTO_ROOT / PROTO_FILE),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {PROTO_ROOT / PROTO_FILE}")
        out = Path(scratch) / "vecstore" / "v1"
        rendered = {}
        for name in OUTPUTS:
            text = (out / name).read_text()
            # the generated gRPC module imports its messages by proto path; they live in this package
            text = text.replace("from vecstore.v1 import vecstore_pb2", "from vecstore.rpc import vecstore_pb2")
            rendered[name] = text
        return rendered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report whether the modules are up to date")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        target = PACKAGE_DIR / name
        if not target.exists() or target.read_text() != text:
            stale.append(name)
            if not args.check:
                target.write_text(text)
    if args.check and stale:
        print(f"stale generated modules: {', '.join(stale)}; run python -m vecstore.rpc.generate", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
