"""The one table mapping engine errors to gRPC status codes (the client holds its inverse)."""

from __future__ import annotations

import grpc

from vecstore import errors

STATUS_OF: dict[type[errors.VecstoreError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.DataCorruption: grpc.StatusCode.DATA_LOSS,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}
#: Trailing metadata key naming the exact error class, so the client can raise the same subclass.
ERROR_CLASS_KEY = "vecstore-error-class"


def status_of(exc: errors.VecstoreError) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]  # type: ignore[index]
    return grpc.StatusCode.INTERNAL


def abort(context: grpc.ServicerContext, exc: errors.VecstoreError) -> None:
    """End the call with the status mapped from ``exc`` and its message (raises)."""
    context.set_trailing_metadata(((ERROR_CLASS_KEY, type(exc).__name__),))
    context.abort(status_of(exc), str(exc))
