"""Bearer-token authentication: a read-write token and an optional read-only token.

Tokens arrive as ``authorization: Bearer <token>`` metadata. The health service stays open so load
balancers can probe without credentials. Comparisons are constant-time; tokens are never logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

import grpc

HEALTH_PREFIX = "/grpc.health.v1.Health/"


def _deny(code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    def handler(request: object, context: grpc.ServicerContext) -> None:
        context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(handler)


class TokenAuth(grpc.ServerInterceptor):
    def __init__(self, token: str, read_only_token: str | None, write_methods: frozenset[str]) -> None:
        if not token:
            raise ValueError("an empty token would let anyone in; pass a non-empty token or none")
        self._token = token.encode()
        self._read_only = read_only_token.encode() if read_only_token else None
        self._write_methods = write_methods

    def _presented(self, metadata: tuple) -> bytes | None:
        for key, value in metadata or ():
            if key == "authorization":
                text = value.decode() if isinstance(value, bytes) else value
                scheme, _, token = text.partition(" ")
                return token.strip().encode() if scheme.lower() == "bearer" else None
        return None

    def intercept_service(
        self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        if method.startswith(HEALTH_PREFIX):
            return continuation(handler_call_details)
        presented = self._presented(handler_call_details.invocation_metadata)
        if presented is None:
            return _deny(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing credentials: send metadata 'authorization: Bearer <token>' (Client(token=...))",
            )
        if hmac.compare_digest(presented, self._token):
            return continuation(handler_call_details)
        if self._read_only is not None and hmac.compare_digest(presented, self._read_only):
            if method in self._write_methods:
                return _deny(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"the read-only token cannot call {method.rsplit('/', 1)[-1]}; use the read-write token",
                )
            return continuation(handler_call_details)
        return _deny(grpc.StatusCode.UNAUTHENTICATED, "invalid token; check the token the server was started with")
