"""The inverse of the server's status table: gRPC errors back into vecstore's exception classes."""

from __future__ import annotations

import grpc

import vecstore.errors as errors

CLASS_OF: dict[grpc.StatusCode, type[errors.VecstoreError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.ResourceExhausted,
    grpc.StatusCode.DATA_LOSS: errors.DataCorruption,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.DeadlineExceeded,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
    grpc.StatusCode.UNAUTHENTICATED: errors.Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: errors.PermissionDenied,
}
ERROR_CLASS_KEY = "vecstore-error-class"  # must match server/errors.py
_BY_NAME = {
    cls.__name__: cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.VecstoreError)
}


def from_rpc_error(exc: grpc.RpcError) -> errors.VecstoreError:
    """The vecstore exception an RpcError stands for (the exact subclass when the server named it)."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    message = exc.details() if hasattr(exc, "details") else str(exc)
    cls: type[errors.VecstoreError] = CLASS_OF.get(code, errors.VecstoreError)
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    for key, value in trailing or ():
        if key == ERROR_CLASS_KEY and value in _BY_NAME:
            cls = _BY_NAME[value]
    error = cls.__new__(cls)
    Exception.__init__(error, message or f"{code.name} from the server")
    return error
