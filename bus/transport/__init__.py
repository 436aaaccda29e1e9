"""Transports that carry bus topics between processes. The in-process :class:`bus.Bus` is
the default; :mod:`bus.transport.zenoh` bridges a local bus to Eclipse Zenoh."""
