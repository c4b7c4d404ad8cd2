"""The wire format: generated code in sync with proto/, filters and arrays round-trip, malformed input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from tests.test_filters import filters
from vecstore import InvalidArgument
from vecstore.rpc import convert, generate
from vecstore.rpc import vecstore_pb2 as pb


def test_generated_modules_match_the_proto():
    rendered = generate.render()
    for name, text in rendered.items():
        assert (generate.PACKAGE_DIR / name).read_text() == text, (
            f"{name} is stale: run python -m vecstore.rpc.generate"
        )


@settings(max_examples=200, deadline=None)
@given(filters)
def test_filter_ast_round_trips_through_protobuf(node):
    message = convert.filter_to_proto(node)
    decoded = pb.Filter.FromString(message.SerializeToString())
    assert convert.filter_from_proto(decoded) == node


def test_text_and_unset_filters():
    assert convert.filter_from_proto(convert.filter_to_proto("year > 1")) == "year > 1"
    assert convert.filter_from_proto(convert.filter_to_proto(None)) is None


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (pb.Filter(compare=pb.Comparison(field="x", op="~", value=pb.Value(int_value=1))), "unknown op"),
        (pb.Filter(compare=pb.Comparison(field="x", op="=")), "value is missing"),
        (pb.Filter(compare=pb.Comparison(op="=", value=pb.Value(int_value=1))), "field is empty"),
        (pb.Filter(all_of=pb.FilterList()), "at least one child"),
        (pb.Filter(all_of=pb.FilterList(filters=[pb.Filter(text="x = 1")])), "AST node"),
        (pb.Filter(negation=pb.Filter()), "negate"),
        (pb.Filter(in_list=pb.InPredicate(field="x")), "at least one value"),
        (pb.Filter(contains=pb.ContainsPredicate(field="t", mode="some", values=[pb.Value(string_value="a")])), "mode"),
    ],
)
def test_malformed_filter_messages_are_invalid_argument(message, error):
    with pytest.raises(InvalidArgument, match=error):
        convert.filter_from_proto(message)


def test_deeply_nested_filter_message_is_refused():
    message = pb.Filter(is_null=pb.NullPredicate(field="x"))
    for _ in range(80):
        message = pb.Filter(negation=message)
    with pytest.raises(InvalidArgument, match="nests deeper"):
        convert.filter_from_proto(message)


def test_packed_arrays_round_trip_and_check_lengths():
    ids = np.array([0, 5, 2**62], dtype=np.int64)
    np.testing.assert_array_equal(convert.unpack_ids(convert.pack_ids(ids)), ids)
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(convert.unpack_matrix(convert.pack_floats(matrix), 4), matrix)
    with pytest.raises(InvalidArgument, match="multiple of 8"):
        convert.unpack_ids(b"\x00" * 7)
    with pytest.raises(InvalidArgument, match="whole number of float32 vectors of dim 4"):
        convert.unpack_matrix(b"\x00" * 20, 4)
    with pytest.raises(InvalidArgument, match="not a valid Arrow IPC stream"):
        convert.table_from_ipc(b"garbage bytes")
