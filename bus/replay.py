"""Read recordings back: raw records, typed messages, and replay onto a bus.

Reading streams the file from the start, so it works on recordings cut short by a killed
run: every message of every complete chunk is returned, then a warning names the byte offset
where the file broke. When a record in the middle is damaged but the file's summary section
(its chunk index) is intact, only the damaged chunk is skipped: reading resumes at the next
indexed chunk and a warning names the damaged byte range and how many messages were lost.
A channel whose schema does not match the type the topic table declares is refused with
:class:`RecordingError` naming the topic, before any message is returned.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
from mcap.records import Channel, Chunk, ChunkIndex, Footer, Message, Metadata, Schema, Statistics
from mcap.stream_reader import StreamReader, breakup_chunk

from bus.bus import Bus
from bus.foxglove import register_default_views, replacing_view, views_for
from bus.recorder import METADATA_NAME
from bus.schema import (
    MESSAGE_ENCODING,
    json_decoder,
    json_schema,
    schema_differences,
    schema_name,
)
from bus.topics import TOPICS, TopicSpec

logger = logging.getLogger(__name__)

MCAP_MAGIC = b"\x89MCAP0\r\n"
MAX_RECORD_BYTES = 1 << 30
"""Records claiming to be larger are treated as corruption rather than allocated."""
FOOTER_BYTES = 1 + 8 + 8 + 8 + 4
"""Footer record: opcode, length, summary start, summary offset start, summary CRC."""


class RecordingError(ValueError):
    """A recording cannot be used: not MCAP, or its schemas do not match the topic table."""


class RawMessage(NamedTuple):
    """One recorded message, undecoded. Times in ns (see :mod:`bus.recorder`)."""

    channel: Channel
    schema: Schema | None
    log_time_ns: int
    publish_time_ns: int
    data: bytes


class LogMessage(NamedTuple):
    """One recorded message decoded into its typed struct."""

    topic: str
    log_time_ns: int
    message: Any


@dataclass
class ReadReport:
    """What a pass over the file found. ``broken_at`` is the byte offset of the first
    record that could not be read (None when the file is complete)."""

    path: Path
    size_bytes: int = 0
    complete: bool = False
    broken_at: int | None = None
    error: str = ""
    chunks: int = 0
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    damaged: list[DamagedRange] = field(default_factory=list)
    messages: int = 0
    lost_messages: int | None = None
    """Messages the damaged ranges held (from the file's statistics; None if unknown)."""

    def warning(self) -> str | None:
        if self.damaged:
            return self._damage_warning()
        if self.complete:
            return None
        if self.broken_at is None or self.broken_at >= self.size_bytes:
            return (
                f"{self.path}: the file ends at byte {self.size_bytes} without its summary "
                f"(the recording was cut short); read its {self.chunks} complete chunk(s)"
            )
        return (
            f"{self.path}: unreadable from byte {self.broken_at} of {self.size_bytes} "
            f"({self.error}); returned the messages of the {self.chunks} complete chunk(s) "
            "before it"
        )

    def _damage_warning(self) -> str:
        ranges = "; ".join(f"bytes {d.start}-{d.end} ({d.error})" for d in self.damaged)
        lost = (
            "an unknown number of messages"
            if self.lost_messages is None
            else f"{self.lost_messages} message(s)"
        )
        text = (
            f"{self.path}: skipped {len(self.damaged)} damaged range(s): {ranges}; "
            f"{lost} lost, {self.messages} read from the intact chunks"
        )
        if not self.complete:
            text += f"; the file then broke at byte {self.broken_at} ({self.error})"
        return text


class DamagedRange(NamedTuple):
    """Bytes ``[start, end)`` of a file that could not be read and were skipped."""

    start: int
    end: int
    error: str


class _Index(NamedTuple):
    """What the summary section of an MCAP file says about its data section."""

    chunk_starts: list[int]
    data_end: int
    schemas: dict[int, Schema]
    channels: dict[int, Channel]
    message_count: int | None

    def resume_offset(self, broken_at: int) -> int | None:
        """Start of the first indexed chunk after ``broken_at``, else the summary's start
        (reading on there reaches the footer); None past the data section."""
        if broken_at >= self.data_end:
            return None
        return min((s for s in self.chunk_starts if s > broken_at), default=self.data_end)


def _read_index(stream: Any, size_bytes: int) -> _Index | None:
    """The chunk index, schemas and channels of the file's summary section; None when the
    file has none (cut short) or it is unreadable."""
    try:
        stream.seek(size_bytes - FOOTER_BYTES - len(MCAP_MAGIC))
        tail = stream.read(FOOTER_BYTES + len(MCAP_MAGIC))
        if len(tail) != FOOTER_BYTES + len(MCAP_MAGIC) or not tail.endswith(MCAP_MAGIC):
            return None
        summary_start = struct.unpack_from("<Q", tail, 9)[0]
        if not len(MCAP_MAGIC) < summary_start < size_bytes - FOOTER_BYTES:
            return None
        stream.seek(summary_start)
        records = StreamReader(
            stream, skip_magic=True, validate_crcs=True, record_size_limit=MAX_RECORD_BYTES
        ).records
        chunk_starts, schemas, channels, count = [], {}, {}, None
        for record in records:
            if isinstance(record, ChunkIndex):
                chunk_starts.append(record.chunk_start_offset)
            elif isinstance(record, Schema):
                schemas[record.id] = record
            elif isinstance(record, Channel):
                channels[record.id] = record
            elif isinstance(record, Statistics):
                count = record.message_count
            elif isinstance(record, Footer):
                break
    except Exception:  # noqa: BLE001 - untrusted bytes: an unreadable summary is no summary
        return None
    if not chunk_starts:
        return None
    return _Index(sorted(chunk_starts), summary_start, schemas, channels, count)


class LogReader:
    """Streaming reader of one MCAP recording.

    :raises OSError: the file cannot be opened.
    :raises RecordingError: it is not an MCAP file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        register_default_views()
        self.path = Path(path)
        if not self.path.is_file():
            raise OSError(f"recording {str(self.path)!r} does not exist or is not a file")
        with open(self.path, "rb") as stream:
            magic = stream.read(8)
        if magic != MCAP_MAGIC:
            raise RecordingError(f"{self.path} is not an MCAP file (bad magic bytes {magic[:8]!r})")
        self.report = ReadReport(self.path, size_bytes=self.path.stat().st_size)
        self._warned: set[str] = set()

    def raw(self, warn: bool = True) -> Iterator[RawMessage]:
        """Every message in file order. A damaged record is skipped up to the next indexed
        chunk when the file's summary is intact; otherwise reading stops there. Problems are
        logged (if ``warn``, once per reader); :attr:`report` describes the pass afterwards."""
        report = self.report = ReadReport(self.path, size_bytes=self.path.stat().st_size)
        schemas: dict[int, Schema] = {}
        channels: dict[int, Channel] = {}
        index: _Index | None = None
        index_read = False
        with open(self.path, "rb") as stream:
            records = self._records(stream, skip_magic=False)
            offset = len(MCAP_MAGIC)
            while True:
                try:
                    record = next(records)
                    inner = (
                        breakup_chunk(record, validate_crc=True)
                        if isinstance(record, Chunk)
                        else [record]
                    )
                except StopIteration:
                    break
                except Exception as error:  # noqa: BLE001 - untrusted bytes: any failure ends the read
                    if not index_read:
                        index, index_read = _read_index(stream, report.size_bytes), True
                    resume = index.resume_offset(offset) if index else None
                    if index is not None and resume is not None:
                        report.damaged.append(DamagedRange(offset, resume, _describe(error)))
                        schemas.update(index.schemas)
                        channels.update(index.channels)
                        stream.seek(resume)
                        records, offset = self._records(stream, skip_magic=True), resume
                        continue
                    report.broken_at, report.error = offset, _describe(error)
                    report.complete = False
                    break
                offset = stream.tell()
                report.chunks += isinstance(record, Chunk)
                for item in inner:
                    if isinstance(item, Schema):
                        schemas[item.id] = item
                    elif isinstance(item, Channel):
                        channels[item.id] = item
                    elif isinstance(item, Metadata):
                        report.metadata.setdefault(item.name, {}).update(item.metadata)
                    elif isinstance(item, Message) and item.channel_id in channels:
                        channel = channels[item.channel_id]
                        report.messages += 1
                        yield RawMessage(
                            channel,
                            schemas.get(channel.schema_id),
                            item.log_time,
                            item.publish_time,
                            item.data,
                        )
                    elif isinstance(item, Footer):
                        report.complete = True
        if report.damaged and index is not None and index.message_count is not None:
            report.lost_messages = max(index.message_count - report.messages, 0)
        if warn and (message := report.warning()):
            self._warn_once(message)

    @staticmethod
    def _records(stream: Any, skip_magic: bool) -> Iterator[Any]:
        return StreamReader(
            stream,
            skip_magic=skip_magic,
            emit_chunks=True,
            validate_crcs=True,
            record_size_limit=MAX_RECORD_BYTES,
        ).records

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            logger.warning(message)

    def metadata(self) -> dict[str, str]:
        """The run description the recorder stored (env, seed, control rate ...)."""
        if METADATA_NAME not in self.report.metadata:
            for _ in self.raw(warn=False):
                pass
        return self.report.metadata.get(METADATA_NAME, {})

    def messages(
        self, topics: Iterable[str] | None = None, table: dict[str, TopicSpec] | None = None
    ) -> Iterator[LogMessage]:
        """Typed messages of the declared topics (all, or ``topics``), in file order.

        Channels of topics the table does not declare are skipped with a warning; Foxglove
        companion channels (e.g. ``/x/annotations``) are skipped silently.

        :raises RecordingError: a wanted topic's schema does not match its declared type.
        """
        table = TOPICS if table is None else table
        wanted = None if topics is None else set(topics)
        decoders = self._decoders(table, wanted)
        for raw in self.raw():
            decode = decoders.get(raw.channel.id)
            if decode is None:
                continue
            try:
                message = decode(raw.data)
            except (
                msgspec.DecodeError,
                msgspec.ValidationError,
                ValueError,
                KeyError,
                TypeError,
            ) as error:
                logger.warning(
                    "%s: skipping an undecodable message on %s at log time %d ns: %s",
                    self.path,
                    raw.channel.topic,
                    raw.log_time_ns,
                    error,
                )
                continue
            yield LogMessage(raw.channel.topic, raw.log_time_ns, message)

    def channels(self) -> list[tuple[Channel, Schema | None]]:
        """Every channel of the file with its schema (one pass)."""
        found: dict[int, tuple[Channel, Schema | None]] = {}
        for raw in self.raw(warn=False):
            found.setdefault(raw.channel.id, (raw.channel, raw.schema))
        return list(found.values())

    def _decoders(
        self, table: dict[str, TopicSpec], wanted: set[str] | None
    ) -> dict[int, Callable]:
        decoders: dict[int, Callable] = {}
        unknown = []
        for channel, schema in self.channels():
            if wanted is not None and channel.topic not in wanted:
                continue
            spec = table.get(channel.topic)
            if spec is None:
                if not _is_companion(channel.topic, table):
                    unknown.append(channel.topic)
                continue
            decoders[channel.id] = channel_decoder(self.path, channel, schema, spec)
        if unknown:
            logger.warning(
                "%s: skipping topics not declared in bus/topics.py: %s",
                self.path,
                ", ".join(sorted(unknown)),
            )
        return decoders


def channel_decoder(
    path: Path, channel: Channel, schema: Schema | None, spec: TopicSpec
) -> Callable:
    """A function decoding this channel's message bytes into ``spec.msg_type``.

    :raises RecordingError: the channel's schema or encoding does not match the declaration.
    """
    where = f"{path}: topic {channel.topic}"
    if channel.message_encoding != MESSAGE_ENCODING:
        raise RecordingError(f"{where} is encoded as {channel.message_encoding!r}, expected json")
    view = replacing_view(spec.msg_type)
    expected = view.schema_name if view else schema_name(spec.msg_type)
    recorded = schema.name if schema else "(no schema)"
    if recorded != expected:
        raise RecordingError(
            f"{where} was recorded as {recorded}, but bus/topics.py declares "
            f"{expected}; the recording does not match this version's types"
        )
    if view is not None:
        decode_view = view.decode
        return lambda data: decode_view(json.loads(data))  # type: ignore[misc]

    try:
        recorded_schema = json.loads(schema.data)  # type: ignore[union-attr]
    except ValueError as error:
        raise RecordingError(f"{where}: its schema is not valid JSON ({error})") from None
    differences = schema_differences(recorded_schema, json_schema(spec.msg_type))
    if differences:
        raise RecordingError(
            f"{where}: the recorded {recorded} schema differs from the declared "
            f"type ({'; '.join(differences)}); it was recorded by another "
            "version of the message types"
        )
    return json_decoder(spec.msg_type)


def _is_companion(topic: str, table: dict[str, TopicSpec]) -> bool:
    return any(
        topic == name + view.suffix
        for name, spec in table.items()
        for view in views_for(spec.msg_type)
        if view.suffix
    )


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if type(error).__name__ == "EndOfFile" or isinstance(error, struct.error):
        text = "record cut off at the end of the file"
    return text


@dataclass
class ReplayStats:
    messages: int = 0
    per_topic: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    log_span_ns: int = 0


def replay(
    reader: LogReader,
    bus: Bus,
    topics: Iterable[str] | None = None,
    speed: float | None = 1.0,
    on_message: Callable[[LogMessage], None] | None = None,
) -> ReplayStats:
    """Publish the recording's typed messages on ``bus`` in recorded order.

    :param speed: 1.0 plays at recorded speed (by log time), 2.0 twice as fast, None as fast
        as possible.
    :param on_message: called after each message is published (progress, comparisons).
    """
    if speed is not None and speed <= 0:
        raise ValueError(f"replay speed must be positive, got {speed}")
    stats = ReplayStats()
    start_wall = time.perf_counter()
    first_log: int | None = None
    for item in reader.messages(topics, bus.table):
        first_log = item.log_time_ns if first_log is None else first_log
        if speed is not None:
            due_s = (item.log_time_ns - first_log) / 1e9 / speed
            delay = due_s - (time.perf_counter() - start_wall)
            if delay > 0:
                time.sleep(delay)
        bus.publish(item.topic, item.message)
        stats.messages += 1
        stats.per_topic[item.topic] = stats.per_topic.get(item.topic, 0) + 1
        stats.log_span_ns = item.log_time_ns - first_log
        if on_message is not None:
            on_message(item)
    stats.wall_s = time.perf_counter() - start_wall
    return stats
