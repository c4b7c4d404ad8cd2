"""Assemble and run the server: database, servicers, auth, health, reflection, TLS, metrics, shutdown."""

from __future__ import annotations

import faulthandler
import logging
import signal
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

import vecstore
from server.auth import TokenAuth
from server.metrics import Metrics
from server.servicers import WRITE_METHODS, Service, method_handlers
from vecstore.rpc import vecstore_pb2 as pb

log = logging.getLogger("vecstore.server")

SERVICE_NAMES = tuple(s.full_name for s in pb.DESCRIPTOR.services_by_name.values())
DEFAULT_PORT = 50051
DEFAULT_MAX_MESSAGE_BYTES = 256 << 20


@dataclass
class ServerConfig:
    """Everything the server can be told (flags, environment or a TOML file fill it in)."""

    data: Path = Path("./data")
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT  # 0: pick a free port
    token: str | None = None
    read_only_token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    workers: int = 8
    metrics_port: int | None = None  # loopback HTTP port for /metrics; None: off
    grace_seconds: float = 10.0


class VecstoreServer:
    """A running server; ``start()`` returns once it is SERVING, ``stop()`` drains and closes."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.health = health.HealthServicer()
        self.metrics = Metrics()
        self.db: vecstore.Database | None = None
        self.port: int | None = None
        options = [
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", config.max_message_bytes),
        ]
        interceptors = []
        if config.token:
            interceptors.append(TokenAuth(config.token, config.read_only_token, WRITE_METHODS))
        elif config.read_only_token:
            raise vecstore.InvalidArgument("a read-only token needs a read-write token beside it (--token)")
        self.grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="vecstore-rpc"),
            options=options,
            interceptors=interceptors,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        self.service = Service(self.metrics)
        for name, methods in method_handlers(self.service):
            self.grpc.add_registered_method_handlers(name, methods)
        reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), self.grpc)
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)

    def _set_health(self, status: int) -> None:
        for name in ("", *SERVICE_NAMES):
            self.health.set(name, status)

    def _bind(self) -> int:
        address = f"{self.config.host}:{self.config.port}"
        if self.config.tls_cert or self.config.tls_key:
            if not (self.config.tls_cert and self.config.tls_key):
                raise vecstore.InvalidArgument("TLS needs both --tls-cert and --tls-key")
            credentials = grpc.ssl_server_credentials(
                [(Path(self.config.tls_key).read_bytes(), Path(self.config.tls_cert).read_bytes())]
            )
            port = self.grpc.add_secure_port(address, credentials)
        else:
            port = self.grpc.add_insecure_port(address)
        if port == 0:
            raise vecstore.FailedPrecondition(f"cannot listen on {address}; is the port in use?")
        return port

    def start(self) -> VecstoreServer:
        self.port = self._bind()
        self.grpc.start()  # health answers NOT_SERVING while the database opens
        try:
            self.db = vecstore.connect(self.config.data)
        except BaseException:
            self.grpc.stop(0)
            raise
        self.service.db = self.db
        if self.config.metrics_port is not None:
            self.metrics.serve(self.config.metrics_port)
        self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info("serving", extra={"address": f"{self.config.host}:{self.port}", "data": str(self.config.data)})
        return self

    def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING, refuse new calls, let in-flight ones finish, then flush and close the database."""
        self.health.enter_graceful_shutdown()
        self.grpc.stop(self.config.grace_seconds if grace is None else grace).wait()
        self.service.db = None
        if self.db is not None:
            self.db.close()
            self.db = None
        log.info("stopped")

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.port}"


#: seconds past the drain window after which a stopping server dumps its threads' stacks
STOP_STACKS_AFTER_S = 20.0


def serve(config: ServerConfig) -> None:
    """Run until SIGTERM or SIGINT, then drain and exit cleanly."""
    server = VecstoreServer(config).start()
    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("signal", extra={"signal": signal.Signals(signum).name})
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"vecstore serving on {server.address} (data in {config.data})", flush=True)
    stopping.wait()
    # a stop that outlives its drain window writes every thread's stack to stderr, once: a bench run
    # twice saw a server take over 60 s to exit, and only the stacks can say where it waited
    faulthandler.dump_traceback_later(config.grace_seconds + STOP_STACKS_AFTER_S, exit=False)
    try:
        server.stop()
    finally:
        faulthandler.cancel_dump_traceback_later()
