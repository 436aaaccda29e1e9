"""Record bus topics into an MCAP file (JSON messages with JSON Schemas) that Foxglove opens.

The file is written in compressed chunks while the run goes, under ``NAME.partial.mcap``,
and renamed to its final name when the recorder closes. A run killed mid-way leaves the
partial file, readable up to its last complete chunk (``drivestack log info`` says where it
broke).

Times: a message's ``publish_time`` is its header stamp (simulation time since its episode
start); its ``log_time`` is the recording's own monotonic clock: simulation time accumulated
over the episodes, with a gap of :data:`EPISODE_GAP_NS` between episodes, so Foxglove's
timeline plays the episodes one after another.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from mcap.writer import CompressionType, Writer

from bus.bus import Bus, Subscription
from bus.foxglove import FoxgloveView, register_default_views, views_for
from bus.schema import (
    MESSAGE_ENCODING,
    SCHEMA_ENCODING,
    encode_hook,
    json_schema,
    schema_bytes,
    schema_name,
)
from bus.topics import TopicSpec

logger = logging.getLogger(__name__)

EPISODE_GAP_NS = 1_000_000_000
"""Log-time gap inserted where simulation time restarts (a new episode)."""

PARTIAL_SUFFIX = ".partial.mcap"
METADATA_NAME = "drivestack"
"""Name of the MCAP metadata record holding the run's description (env, seed, rates)."""


@dataclass(frozen=True)
class RecorderConfig:
    """:param chunk_size_bytes: uncompressed size at which a chunk is closed and written; a
        killed run loses at most the last chunk.
    :param compression: ``zstd``, ``lz4`` or ``none``.
    :param background: encode and write on a writer thread, so that the loop only pays for
        queueing a reference (JPEG encoding releases the GIL and runs in parallel).
    :param queue_size: messages the writer thread may lag behind before publishers wait.
    """

    chunk_size_bytes: int = 256 * 1024
    compression: str = "zstd"
    background: bool = True
    queue_size: int = 256


def partial_path(path: str | os.PathLike) -> Path:
    """Where a recording bound for ``path`` lives until it is complete."""
    target = Path(path)
    stem = target.name[: -len(".mcap")] if target.name.endswith(".mcap") else target.name
    return target.with_name(stem + PARTIAL_SUFFIX)


@dataclass
class _Channel:
    channel_id: int
    encode: Any
    companion: bool = False
    """A Foxglove view written beside the topic's own channel (e.g. ``/x/annotations``)."""


class Recorder:
    """Subscribes to topics on a bus and writes every message to an MCAP file.

    :param path: final file path (``.mcap``).
    :param bus: the bus to record.
    :param topics: topic names to record; default: every topic marked ``recorded`` in the
        bus's table.
    :param metadata: strings stored in the file's ``drivestack`` metadata record.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        bus: Bus,
        topics: Iterable[str] | None = None,
        metadata: Mapping[str, str] | None = None,
        config: RecorderConfig | None = None,
    ) -> None:
        register_default_views()
        self.config = config or RecorderConfig()
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        self._stream = open(self.partial, "wb")  # noqa: SIM115 - closed in close()
        self._writer = Writer(
            self._stream,
            chunk_size=self.config.chunk_size_bytes,
            compression=_compression(self.config.compression),
        )
        self._writer.start(profile="", library="drivestack")
        self._writer.add_metadata(METADATA_NAME, {k: str(v) for k, v in (metadata or {}).items()})
        self.errors = 0
        self._queue: queue.Queue[tuple[Callable[..., None], tuple] | None] = queue.Queue(
            self.config.queue_size
        )
        self._thread: threading.Thread | None = None
        if self.config.background:
            self._thread = threading.Thread(target=self._drain, name="recorder", daemon=True)
            self._thread.start()
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, list[_Channel]] = {}
        self._json = msgspec.json.Encoder(enc_hook=encode_hook)
        self._offset_ns = 0
        self._last_stamp_ns: int | None = None
        self.message_count = 0
        """Bus messages recorded (one per published message of a recorded topic)."""
        self.companion_count = 0
        """Extra MCAP messages written on companion channels (see :class:`_Channel`); the
        file holds ``message_count + companion_count`` messages."""
        self.closed = False
        names = (
            [s.name for s in bus.table.values() if s.recorded] if topics is None else list(topics)
        )
        self._subscriptions: list[Subscription] = [
            bus.subscribe(name, self._callback(bus.table[name]), label=f"recorder<{name}>")
            for name in names
        ]

    def add_metadata(self, values: Mapping[str, str]) -> None:
        """Add entries to the run description (readers merge the records in order)."""
        entries = {k: str(v) for k, v in values.items()}
        self._submit(self._writer.add_metadata, METADATA_NAME, entries)

    def _submit(self, function: Callable[..., None], *args: Any) -> None:
        if self._thread is None:
            self._run(function, args)
        else:
            self._queue.put((function, args))

    def _drain(self) -> None:
        while (item := self._queue.get()) is not None:
            self._run(*item)
            self._queue.task_done()
        self._queue.task_done()

    def _run(self, function: Callable[..., None], args: tuple) -> None:
        try:
            function(*args)
        except Exception:  # noqa: BLE001 - a bad message must not stop the recording
            self.errors += 1
            if self.errors == 1:
                logger.exception("recorder: could not write a message (further errors counted)")

    def _callback(self, spec: TopicSpec):
        def on_message(message: Any) -> None:
            self.write(spec, message)

        return on_message

    def write(self, spec: TopicSpec, message: Any) -> None:
        """Append one message of topic ``spec`` (what the bus subscription calls)."""
        if self.closed:
            return
        stamp_ns = int(message.header.stamp_ns)
        self._submit(self._append, spec, message, self._log_time(stamp_ns))
        self.message_count += 1

    def _append(self, spec: TopicSpec, message: Any, log_time: int) -> None:
        stamp_ns = int(message.header.stamp_ns)
        channels = self._channels.get(spec.name) or self._register(spec)
        for channel in channels:
            self._writer.add_message(
                channel.channel_id,
                log_time=log_time,
                data=channel.encode(message),
                publish_time=max(stamp_ns, 0),
                sequence=int(message.header.seq) & 0xFFFFFFFF,
            )
            self.companion_count += channel.companion

    def _log_time(self, stamp_ns: int) -> int:
        if self._last_stamp_ns is not None and stamp_ns < self._last_stamp_ns:
            self._offset_ns += self._last_stamp_ns - stamp_ns + EPISODE_GAP_NS
        self._last_stamp_ns = stamp_ns
        return max(self._offset_ns + stamp_ns, 0)

    def _register(self, spec: TopicSpec) -> list[_Channel]:
        views = views_for(spec.msg_type)
        channels = []
        if not any(not view.suffix for view in views):
            schema_id = self._schema(schema_name(spec.msg_type), json_schema(spec.msg_type))
            channels.append(_Channel(self._channel(spec, spec.name, schema_id), self._json.encode))
        for view in views:
            schema_id = self._schema(view.schema_name, dict(view.schema))
            channel_id = self._channel(spec, spec.name + view.suffix, schema_id)
            channels.append(_Channel(channel_id, self._view_encoder(view), bool(view.suffix)))
        self._channels[spec.name] = channels
        return channels

    def _view_encoder(self, view: FoxgloveView):
        return lambda message: self._json.encode(view.encode(message))

    def _schema(self, name: str, schema: dict[str, Any]) -> int:
        if name not in self._schemas:
            self._schemas[name] = self._writer.register_schema(
                name=name, encoding=SCHEMA_ENCODING, data=schema_bytes(schema)
            )
        return self._schemas[name]

    def _channel(self, spec: TopicSpec, topic: str, schema_id: int) -> int:
        msg_type = f"{spec.msg_type.__module__}.{spec.msg_type.__qualname__}"
        return self._writer.register_channel(
            topic=topic,
            message_encoding=MESSAGE_ENCODING,
            schema_id=schema_id,
            metadata={"msg_type": msg_type, "source_topic": spec.name},
        )

    def flush(self) -> None:
        """Wait until the writer thread has written everything queued, then hand the file's
        buffered bytes to the OS (only complete chunks are in the file)."""
        if self._thread is not None:
            self._queue.join()
        self._stream.flush()

    def close(self) -> Path:
        """Stop recording, write the summary and give the file its final name."""
        if self.closed:
            return self.path
        self._stop()
        try:
            self._writer.finish()
        finally:
            self._stream.close()
        os.replace(self.partial, self.path)
        logger.info(
            "recorded %d messages to %s (%d bus messages + %d on companion channels; %d errors)",
            self.message_count + self.companion_count,
            self.path,
            self.message_count,
            self.companion_count,
            self.errors,
        )
        return self.path

    def _stop(self) -> None:
        """Unsubscribe and let the writer thread drain its queue."""
        self.closed = True
        for subscription in self._subscriptions:
            subscription.close()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()

    def abort(self) -> None:
        """Stop recording and delete the partial file, leaving any earlier ``path`` as it was."""
        if self.closed:
            return
        self._stop()
        self._stream.close()
        self.partial.unlink(missing_ok=True)
        logger.info("recording to %s discarded", self.path)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _compression(name: str) -> CompressionType:
    options = {
        "zstd": CompressionType.ZSTD,
        "lz4": CompressionType.LZ4,
        "none": CompressionType.NONE,
    }
    if name not in options:
        raise ValueError(f"unknown compression {name!r}; choose one of: {', '.join(options)}")
    return options[name]
