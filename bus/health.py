"""Topic health: is each input of a node alive, on rate and valid?

Everything is judged in simulation time, from message stamps, against the rates the topic
table declares: an input is *alive* when its last message is at most
``timeout_periods / rate`` older than the newest stamp the node has seen, *on rate* when its
measured rate over the last messages is within ``rate_tolerance`` of the declared rate, and
*valid* when its last message's header says so. Latched and event topics (no declared rate)
are alive once seen. Simulation time going backwards (a new episode) restarts the monitor.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from bus.topics import CONTROL_RATE, TOPICS, TopicSpec, topic_spec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthConfig:
    """:param timeout_periods: an input is dead once its last message is older than this many
        periods of its declared rate.
    :param rate_tolerance: relative deviation from the declared rate still counted on rate.
    :param rate_window: number of recent messages the rate is measured over.
    :param max_events: events kept in memory (further ones are counted only).
    """

    timeout_periods: float = 2.5
    rate_tolerance: float = 0.2
    rate_window: int = 10
    max_events: int = 1000


@dataclass(frozen=True)
class InputHealth:
    """Health of one input at ``now_ns``. ``on_rate`` is None until two stamps were seen or
    when the topic declares no rate; ``age_ns`` is None before the first message."""

    topic: str
    alive: bool
    on_rate: bool | None
    valid: bool
    rate_hz: float | None
    age_ns: int | None

    @property
    def ok(self) -> bool:
        """Usable as an input: alive and valid (an off-rate input is reported, not dropped)."""
        return self.alive and self.valid


@dataclass(frozen=True)
class HealthEvent:
    """A change of an input's state: ``kind`` is dead, alive, invalid, valid, off_rate or
    on_rate; ``stamp_ns`` the simulation time when it was noticed."""

    stamp_ns: int
    node: str
    topic: str
    kind: str
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Track:
    spec: TopicSpec
    stamps: deque = field(default_factory=deque)
    last_valid: bool = True
    state: dict[str, bool | None] = field(default_factory=dict)


class HealthMonitor:
    """Tracks the inputs of one node.

    :param control_rate_hz: the rate of ``CONTROL_RATE`` topics; None leaves them
        unchecked for rate and timeout (alive once seen).
    """

    def __init__(
        self,
        node: str,
        topics: Iterable[str],
        control_rate_hz: float | None,
        config: HealthConfig | None = None,
        table: dict[str, TopicSpec] | None = None,
    ) -> None:
        self.node = node
        self.config = config or HealthConfig()
        self.control_rate_hz = control_rate_hz
        table = TOPICS if table is None else table
        self._tracks = {name: _Track(topic_spec(name, table)) for name in topics}
        self._now_ns: int | None = None
        self.events: list[HealthEvent] = []
        self.event_counts: dict[str, int] = {}

    def reset(self) -> None:
        """Forget every input (a new episode)."""
        for track in self._tracks.values():
            track.stamps.clear()
            track.last_valid = True
            track.state.clear()
        self._now_ns = None

    def observe(self, topic: str, message: Any) -> None:
        """Note the arrival of ``message`` on ``topic``."""
        header = message.header
        stamp = int(header.stamp_ns)
        if self._now_ns is not None and stamp < self._now_ns:
            self.reset()
        track = self._tracks[topic]
        track.stamps.append(stamp)
        while len(track.stamps) > self.config.rate_window:
            track.stamps.popleft()
        track.last_valid = bool(header.valid)
        self._now_ns = stamp if self._now_ns is None else max(self._now_ns, stamp)

    def check(self, now_ns: int | None = None) -> dict[str, InputHealth]:
        """Health of every input at ``now_ns`` (default: the newest stamp seen); records
        state changes as events."""
        now = self._now_ns if now_ns is None else now_ns
        report = {name: self._health(track, now) for name, track in self._tracks.items()}
        for name, health in report.items():
            self._note_changes(self._tracks[name], health, now)
        return report

    def _declared_rate_hz(self, spec: TopicSpec) -> float | None:
        if spec.rate == CONTROL_RATE:
            return self.control_rate_hz
        return None if spec.rate is None else float(spec.rate)

    def _health(self, track: _Track, now_ns: int | None) -> InputHealth:
        if not track.stamps or now_ns is None:
            return InputHealth(track.spec.name, False, None, False, None, None)
        rate = self._declared_rate_hz(track.spec)
        age = now_ns - track.stamps[-1]
        alive = rate is None or age <= self.config.timeout_periods * 1e9 / rate
        measured = _rate_hz(track.stamps)
        on_rate = None
        if rate is not None and measured is not None:
            on_rate = abs(measured - rate) <= self.config.rate_tolerance * rate
        return InputHealth(track.spec.name, alive, on_rate, track.last_valid, measured, age)

    def _note_changes(self, track: _Track, health: InputHealth, now_ns: int | None) -> None:
        stamp = now_ns or 0
        seen = health.age_ns is not None
        dead_detail = "never received"
        if health.age_ns is not None:
            dead_detail = f"last message {health.age_ns / 1e9:.2f} s old"
        checks = {
            "alive": (health.alive, "dead", "alive", dead_detail),
            "valid": (health.valid if seen else None, "invalid", "valid", "header.valid is False"),
            "on_rate": (
                health.on_rate,
                "off_rate",
                "on_rate",
                f"measured {health.rate_hz or 0:.2f} Hz",
            ),
        }
        for key, (value, bad, good, detail) in checks.items():
            previous = track.state.get(key)
            if value is None or value == previous:
                continue
            track.state[key] = value
            if previous is None and value:
                continue  # first observation and healthy: nothing to report
            self._event(
                HealthEvent(
                    stamp,
                    self.node,
                    track.spec.name,
                    good if value else bad,
                    "" if value else detail,
                )
            )

    def _event(self, event: HealthEvent) -> None:
        self.event_counts[event.kind] = self.event_counts.get(event.kind, 0) + 1
        if len(self.events) < self.config.max_events:
            self.events.append(event)
        level = logging.INFO if event.kind in ("alive", "valid", "on_rate") else logging.WARNING
        logger.log(
            level,
            "%s: input %s is %s at t=%.2f s %s",
            event.node,
            event.topic,
            event.kind.replace("_", " "),
            event.stamp_ns / 1e9,
            event.detail,
        )


def _rate_hz(stamps: deque) -> float | None:
    if len(stamps) < 2 or stamps[-1] <= stamps[0]:
        return None
    return (len(stamps) - 1) * 1e9 / (stamps[-1] - stamps[0])
