"""Transports that carry bus topics between processes. The in-process :class:`bus.Bus` is
the default; :mod:`bus.transport.zenoh` bridges a local bus to Eclipse Zenoh."""


class RemoteNodeLost(ConnectionError):
    """A node in another process stopped answering (e.g. the remote planner died)."""
