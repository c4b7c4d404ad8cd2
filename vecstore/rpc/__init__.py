"""Generated protobuf / gRPC modules (from proto/) and the conversions both ends of the wire share.

Imported only by server/ and client/.
"""
