"""The one error hierarchy of vecstore.

Every error the engine raises is a :class:`VecstoreError`; the server maps each class to one gRPC
status code and the client maps it back, so embedded and remote users catch the same classes.
Messages say what went wrong and what to do next.
"""

from __future__ import annotations


class VecstoreError(Exception):
    """Base class of every error vecstore raises on purpose."""

    #: gRPC status code name this error maps to (used by server/ and client/).
    grpc_code: str = "INTERNAL"


class InvalidArgument(VecstoreError):
    """The request is malformed: wrong dimension, NaN, unknown field, bad filter, bad k, ..."""

    grpc_code = "INVALID_ARGUMENT"


class FilterSyntaxError(InvalidArgument):
    """A filter string could not be parsed; ``position`` is the 0-based character offset."""

    def __init__(self, message: str, text: str, position: int) -> None:
        self.text = text
        self.position = position
        pointer = f"\n  {text}\n  {' ' * position}^"
        super().__init__(f"filter syntax error at position {position}: {message}{pointer}")


class NotFound(VecstoreError):
    """A collection (or other named object) does not exist."""

    grpc_code = "NOT_FOUND"


class AlreadyExists(VecstoreError):
    """A collection with that name exists already."""

    grpc_code = "ALREADY_EXISTS"


class FailedPrecondition(VecstoreError):
    """The system is not in a state that allows the request (locked directory, closed database, ...)."""

    grpc_code = "FAILED_PRECONDITION"


class ResourceExhausted(VecstoreError):
    """The request is too large (k, batch size, message size) or a resource limit was hit."""

    grpc_code = "RESOURCE_EXHAUSTED"


class Unavailable(VecstoreError):
    """The service cannot answer right now (starting, stopping); retrying later may succeed."""

    grpc_code = "UNAVAILABLE"


class DeadlineExceeded(VecstoreError):
    """The caller's deadline passed before the work could be done."""

    grpc_code = "DEADLINE_EXCEEDED"


class DataCorruption(VecstoreError):
    """Stored data failed verification (checksum mismatch, truncated file, unreadable manifest)."""

    grpc_code = "DATA_LOSS"


class Unauthenticated(VecstoreError):
    """No valid credentials were presented."""

    grpc_code = "UNAUTHENTICATED"


class PermissionDenied(VecstoreError):
    """The credentials do not allow this operation (e.g. a read-only token writing)."""

    grpc_code = "PERMISSION_DENIED"


__all__ = [
    "AlreadyExists",
    "DataCorruption",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FilterSyntaxError",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "VecstoreError",
]
