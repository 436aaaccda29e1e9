"""Rule-based planner: IDM-style gap keeping with MOBIL-style lane changes.

It reads only bus messages (ego state, objects, lanes) and outputs highway-env meta-actions.
Longitudinal: keep at least ``min_gap_m + time_gap_s * speed`` to the lead and never close
in on it faster than the time-to-collision threshold allows. Lateral: pass a slower lead in
an adjacent lane when that lane is safe (the new follower keeps a safe gap, the new lead is
far enough) and better; return to the right when the right lane is free. It is the baseline
and the fallback for learned planners.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bus.messages import DrivingAction, EgoState, Header, LaneGeometry, MetaAction, ObjectList
from planning.fallback import fallback_action, unhealthy_inputs
from planning.scene import Scene, build_scene

LEFT, RIGHT = 1, -1


@dataclass(frozen=True)
class RulePlannerConfig:
    """Thresholds of the rule planner (SI units).

    :param desired_speed_mps: cruise speed when the road is free.
    :param time_gap_s: time headway kept to the lead.
    :param min_gap_m: standstill gap to the lead.
    :param brake_ttc_s: slow down when time-to-collision with the lead falls below this.
    :param pass_speed_margin_mps: a lead this much slower than desired is worth passing.
    :param look_ahead_m: leads farther than this do not influence decisions.
    :param rear_gap_m: a lane change needs at least this gap behind in the target lane.
    :param rear_time_gap_s: ... plus this many seconds of the new follower's closing speed.
    :param front_time_gap_s: a lane change needs this time headway to the new lead.
    :param keep_right: return to the right lane when it is free.
    :param objects_topic: where to read road users (ground truth or perception).
    """

    desired_speed_mps: float = 30.0
    time_gap_s: float = 1.5
    min_gap_m: float = 8.0
    brake_ttc_s: float = 6.0
    pass_speed_margin_mps: float = 1.0
    look_ahead_m: float = 80.0
    rear_gap_m: float = 8.0
    rear_time_gap_s: float = 2.5
    front_time_gap_s: float = 1.2
    lane_end_margin_m: float = 60.0
    keep_right: bool = True
    objects_topic: str = "/sim/objects"


class RulePlanner:
    """Node: ``/sim/ego`` (trigger), objects, ``/sim/lanes`` -> ``/planning/action``."""

    name = "rule"
    trigger = "/sim/ego"

    def __init__(self, config: RulePlannerConfig | None = None) -> None:
        self.config = config or RulePlannerConfig()
        self.inputs = ("/sim/ego", self.config.objects_topic, "/sim/lanes")

    def step(self, inputs: Mapping[str, Any]) -> dict[str, DrivingAction]:
        ego: EgoState = inputs["/sim/ego"]
        objects: ObjectList | None = inputs.get(self.config.objects_topic)
        lanes: LaneGeometry | None = inputs.get("/sim/lanes")
        header = Header(stamp_ns=ego.header.stamp_ns, frame_id="ego")
        unhealthy = unhealthy_inputs(inputs, self.inputs)
        if unhealthy:
            return {"/planning/action": fallback_action(header, self.name, unhealthy)}

        assert objects is not None and lanes is not None
        action, reason = self.decide(build_scene(ego, objects, lanes))
        return {"/planning/action": self._message(header, action, reason, False)}

    def _message(
        self, header: Header, action: MetaAction, reason: str, fallback: bool
    ) -> DrivingAction:
        return DrivingAction(
            header=header, action=action, planner=self.name, fallback=fallback, reason=reason
        )

    def decide(self, scene: Scene) -> tuple[MetaAction, str]:
        """Choose a meta-action and a short reason for it."""
        ego = scene.ego
        lead = scene.lead(0)
        danger = self._too_close(ego.speed_mps, lead)

        # Finish a lane change under way before deciding anything lateral.
        if ego.target_lane_index != ego.lane_index:
            return (
                (MetaAction.SLOWER, "closing in during lane change")
                if danger
                else (MetaAction.IDLE, "changing lane")
            )

        # Pass a slow lead when an adjacent lane is safe and better.
        if (
            lead is not None
            and lead.gap_m < self.config.look_ahead_m
            and (lead.speed_mps < self.config.desired_speed_mps - self.config.pass_speed_margin_mps)
        ):
            side = self._best_pass_side(scene, lead.speed_mps)
            if side is not None:
                return (
                    (MetaAction.LANE_LEFT, "pass on the left")
                    if side == LEFT
                    else (MetaAction.LANE_RIGHT, "pass on the right")
                )

        if danger:
            return MetaAction.SLOWER, "keep time gap to lead"

        if self.config.keep_right and self._right_lane_free(scene):
            return MetaAction.LANE_RIGHT, "return to the right lane"

        if ego.speed_mps < self.config.desired_speed_mps - 0.5 and self._room_to_accelerate(
            ego.speed_mps, lead
        ):
            return MetaAction.FASTER, "free road"
        return MetaAction.IDLE, "keep lane and speed"

    def _safe_gap_m(self, speed_mps: float) -> float:
        return self.config.min_gap_m + self.config.time_gap_s * speed_mps

    def _too_close(self, speed_mps: float, lead) -> bool:
        if lead is None:
            return False
        closing = speed_mps - lead.speed_mps
        ttc = lead.gap_m / closing if closing > 1e-3 else float("inf")
        return lead.gap_m < self._safe_gap_m(speed_mps) or ttc < self.config.brake_ttc_s

    def _room_to_accelerate(self, speed_mps: float, lead) -> bool:
        if lead is None or lead.gap_m > self.config.look_ahead_m:
            return True
        faster = speed_mps + 5.0
        return lead.gap_m > self._safe_gap_m(faster) and lead.speed_mps >= speed_mps

    def _lane_usable(self, scene: Scene, side: int) -> bool:
        target_index = scene.ego.lane_index - side
        lane = scene.lanes.get(target_index)
        if lane is None or lane.forbidden:
            return False
        return lane.ends_ahead_m is None or lane.ends_ahead_m > self.config.lane_end_margin_m

    def _lane_safe(self, scene: Scene, side: int) -> bool:
        """True when the ego can move into the lane on ``side`` without cutting anyone off."""
        if not self._lane_usable(scene, side) or scene.alongside(side):
            return False
        speed = scene.ego.speed_mps
        follower = scene.follower(side)
        if follower is not None:
            closing = max(follower.speed_mps - speed, 0.0)
            if -follower.gap_m < self.config.rear_gap_m + self.config.rear_time_gap_s * closing:
                return False
        lead = scene.lead(side)
        if lead is not None:
            closing = max(speed - lead.speed_mps, 0.0)
            needed = self.config.min_gap_m + self.config.front_time_gap_s * speed + 2.0 * closing
            if lead.gap_m < needed:
                return False
        return True

    def _lane_speed(self, scene: Scene, side: int) -> float:
        """Speed the ego could keep in a lane: its lead's speed if near, else desired."""
        lead = scene.lead(side)
        if lead is None or lead.gap_m > self.config.look_ahead_m:
            return self.config.desired_speed_mps
        return min(lead.speed_mps, self.config.desired_speed_mps)

    def _best_pass_side(self, scene: Scene, lead_speed_mps: float) -> int | None:
        best_side, best_speed = None, lead_speed_mps + self.config.pass_speed_margin_mps
        for side in (LEFT, RIGHT):
            if self._lane_safe(scene, side):
                speed = self._lane_speed(scene, side)
                if speed > best_speed:
                    best_side, best_speed = side, speed
        return best_side

    def _right_lane_free(self, scene: Scene) -> bool:
        if not self._lane_safe(scene, RIGHT):
            return False
        lead = scene.lead(RIGHT)
        return (
            lead is None
            or lead.gap_m > self.config.look_ahead_m
            or (
                lead.speed_mps >= self.config.desired_speed_mps - self.config.pass_speed_margin_mps
                and lead.gap_m > 2 * self._safe_gap_m(scene.ego.speed_mps)
            )
        )
