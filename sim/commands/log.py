"""``drivestack log``: inspect and replay MCAP recordings (``info``, ``echo``, ``replay``)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from sim.commands.args import positive_int
from sim.commands.node import positive_float

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "log",
        help="inspect and replay MCAP recordings",
        description="Inspect and replay the MCAP recordings that 'drivestack sim' writes "
        "(OUT/run.mcap). "
        "Recordings cut short (a killed run) are read up to their last complete chunk, "
        "with a warning naming the byte offset where the file broke.",
    )
    sub = parser.add_subparsers(dest="log_command", metavar="ACTION", required=True)

    recording_help = (
        "an MCAP recording, e.g. OUT/run.mcap of 'drivestack sim' (OUT/run.partial.mcap "
        "while that run goes on, or after it was killed)"
    )
    info = sub.add_parser(
        "info",
        help="topics, types, counts, rates, duration and size",
        description="Print a recording's topics with their schema, message "
        "count and mean rate, and its duration and size.",
    )
    info.add_argument("file", metavar="RUN.mcap", help=recording_help)
    info.add_argument("--json", action="store_true", help="print the report as JSON")
    info.set_defaults(handler=run_info)

    echo = sub.add_parser(
        "echo",
        help="print messages as JSON lines",
        description="Print the messages of one topic as JSON lines "
        '{"topic", "log_time_ns", "message"}.',
    )
    echo.add_argument("file", metavar="RUN.mcap", help=recording_help)
    echo.add_argument("--topic", required=True, help="topic to print, e.g. /sim/ego")
    echo.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        metavar="N",
        help="print at most N messages (default: all)",
    )
    echo.set_defaults(handler=run_echo)

    replay = sub.add_parser(
        "replay",
        help="republish a recording on a bus, optionally re-running the planner",
        description="Decode the recording into typed messages and publish them on an in-process "
        "bus in recorded order. With --planner, the /sim/* topics are fed to a fresh "
        "planner node instead of replaying /planning/action, and its actions are "
        "compared with the recorded ones (process replay); exit status 1 when any "
        "differs. Prints per-topic counts.",
    )
    replay.add_argument("file", metavar="RUN.mcap", help=recording_help)
    pace = replay.add_mutually_exclusive_group()
    pace.add_argument(
        "--speed",
        type=positive_float,
        default=1.0,
        help="playback speed relative to the recorded time (default: %(default)s)",
    )
    pace.add_argument("--fast", action="store_true", help="replay as fast as possible")
    replay.add_argument(
        "--planner",
        default=None,
        metavar="SPEC",
        help="re-run this planner (e.g. rule) on the recorded /sim/* topics and "
        "compare its actions with the recorded ones",
    )
    replay.set_defaults(handler=run_replay)


def run_info(args: argparse.Namespace) -> int:
    report = info(args.file)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(format_info(report))
    return 0


def info(path: str) -> dict[str, Any]:
    """Per-topic counts and rates of a recording, its duration (log time) and size."""
    from bus.replay import LogReader

    reader = LogReader(path)
    topics: dict[str, dict[str, Any]] = {}
    start = end = None
    for raw in reader.raw(warn=False):  # the report shows the warning
        entry = topics.setdefault(
            raw.channel.topic,
            {
                "schema": raw.schema.name if raw.schema else "",
                "count": 0,
                "first_ns": raw.log_time_ns,
                "last_ns": raw.log_time_ns,
            },
        )
        entry["count"] += 1
        entry["last_ns"] = raw.log_time_ns
        start = raw.log_time_ns if start is None else min(start, raw.log_time_ns)
        end = raw.log_time_ns if end is None else max(end, raw.log_time_ns)
    for entry in topics.values():
        span = entry.pop("last_ns") - entry.pop("first_ns")
        entry["rate_hz"] = (entry["count"] - 1) * 1e9 / span if span > 0 else None
    report = reader.report
    return {
        "file": str(reader.path),
        "size_bytes": report.size_bytes,
        "complete": report.complete,
        "warning": report.warning(),
        "duration_s": (end - start) / 1e9 if start is not None else 0.0,
        "messages": sum(t["count"] for t in topics.values()),
        "chunks": report.chunks,
        "damaged_bytes": [[d.start, d.end] for d in report.damaged],
        "lost_messages": report.lost_messages,
        "metadata": report.metadata.get("drivestack", {}),
        "topics": dict(sorted(topics.items())),
    }


def format_info(report: dict[str, Any]) -> str:
    lines = [
        f"file:      {report['file']}",
        f"size:      {report['size_bytes'] / 1e6:.3f} MB in {report['chunks']} chunks"
        + ("" if report["complete"] else "  (INCOMPLETE)")
        + ("  (DAMAGED)" if report["damaged_bytes"] else ""),
        f"duration:  {report['duration_s']:.2f} s (recording time)",
        f"messages:  {report['messages']}",
    ]
    if report["metadata"]:
        lines.append("run:       " + ", ".join(f"{k}={v}" for k, v in report["metadata"].items()))
    rows = [("topic", "schema", "count", "rate_hz")] + [
        (name, t["schema"], str(t["count"]), "-" if t["rate_hz"] is None else f"{t['rate_hz']:.2f}")
        for name, t in report["topics"].items()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    if report["warning"]:
        lines.append("warning:   " + report["warning"])
    return "\n".join(lines)


def run_echo(args: argparse.Namespace) -> int:
    from bus.replay import LogReader

    reader = LogReader(args.file)
    printed = 0
    for raw in reader.raw():
        if raw.channel.topic != args.topic:
            continue
        if raw.channel.message_encoding != "json":
            raise ValueError(
                f"{args.file}: topic {args.topic} is encoded as "
                f"{raw.channel.message_encoding!r}; echo prints json channels only"
            )
        body = raw.data.decode("utf-8", errors="replace")
        sys.stdout.write(
            f'{{"topic": {json.dumps(args.topic)}, "log_time_ns": {raw.log_time_ns}, '
            f'"message": {body}}}\n'
        )
        printed += 1
        if args.limit is not None and printed >= args.limit:
            break
    if printed == 0:
        topics = sorted({channel.topic for channel, _ in reader.channels()})
        recorded = (
            f"recorded topics: {', '.join(topics)}"
            if topics
            else "the file has no complete topics (it holds no readable message)"
        )
        raise ValueError(f"{args.file}: no messages on topic {args.topic!r}; {recorded}")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from bus import Bus
    from bus.replay import LogReader, replay

    reader = LogReader(args.file)
    bus = Bus()
    comparison = _PlannerComparison(args.planner, bus, reader) if args.planner else None
    topics = comparison.replayed_topics(reader) if comparison else None
    stats = replay(reader, bus, topics=topics, speed=None if args.fast else args.speed)
    print(
        f"replayed {stats.messages} messages over {stats.log_span_ns / 1e9:.1f} s of recording "
        f"time in {stats.wall_s:.2f} s"
    )
    for topic, count in sorted(stats.per_topic.items()):
        print(f"  {topic:<24} {count}")
    if comparison is None:
        return 0
    print(comparison.summary())
    return 0 if comparison.identical() else 1


class _PlannerComparison:
    """Feeds the recorded inputs to a fresh planner and compares its actions with the
    recorded ``/planning/action`` messages, matched by stamp and order."""

    def __init__(self, spec: str, bus, reader) -> None:
        from bus.node import NodeRunner
        from planning.factory import make_planner

        self.planner = make_planner(spec)
        rate = reader.metadata().get("control_rate_hz")
        self.runner = NodeRunner(self.planner, bus, control_rate_hz=float(rate) if rate else None)
        self.recorded: list[Any] = [m.message for m in reader.messages(["/planning/action"])]
        self.replayed: list[Any] = []
        bus.subscribe("/planning/action", self.replayed.append, label="replay-compare")

    def replayed_topics(self, reader) -> list[str]:
        return sorted({c.topic for c, _ in reader.channels()} & set(self.planner.inputs))

    def mismatches(self) -> list[tuple[int, Any, Any]]:
        pairs = zip(self.recorded, self.replayed, strict=False)
        return [(i, a, b) for i, (a, b) in enumerate(pairs) if _key(a) != _key(b)]

    def identical(self) -> bool:
        return len(self.recorded) == len(self.replayed) and not self.mismatches()

    def summary(self) -> str:
        mismatches = self.mismatches()
        text = (
            f"planner {self.planner.name}: {len(self.replayed)} actions replayed, "
            f"{len(self.recorded)} recorded, {len(mismatches)} differ"
        )
        for index, recorded, replayed in mismatches[:5]:
            text += (
                f"\n  #{index} t={recorded.header.stamp_ns / 1e9:.2f} s: recorded "
                f"{_describe_action(recorded)}, replayed {_describe_action(replayed)}"
            )
        return text


def _key(action: Any) -> tuple:
    """What a replayed action must reproduce: its stamp, the action and the fallback flag.
    The ``reason`` text is explanation only (shown, not compared)."""
    return (action.header.stamp_ns, int(action.action), action.fallback)


def _describe_action(action: Any) -> str:
    fallback = ", fallback" if action.fallback else ""
    return f"{action.action.name}{fallback} (reason: {action.reason or '-'})"
