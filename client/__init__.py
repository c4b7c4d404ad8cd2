"""The thin Python client: ``Client("host:port", token=...)`` has the embedded ``Database`` surface."""

from client.remote import Client, RemoteCollection

__all__ = ["Client", "RemoteCollection"]
