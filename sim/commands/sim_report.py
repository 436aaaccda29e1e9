"""What ``drivestack sim`` reports: the run summary (OUT/summary.json) and the lines it prints
(the per-episode table, the aggregate, perception and localization)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sim.loop import ClosedLoop, EpisodeResult

PERCEPTION_LATENCIES = ("detector_ms", "step_ms")
"""Keys of the perception node's timing report that are wall-clock latencies (they go under
the summary's ``timing``)."""

TABLE_COLUMNS = (
    ("episode", "ep", "{:d}"),
    ("seed", "seed", "{:d}"),
    ("episode_return", "return", "{:.2f}"),
    ("crashed", "crashed", "{}"),
    ("distance_m", "dist_m", "{:.0f}"),
    ("mean_speed_mps", "speed_mps", "{:.1f}"),
    ("lane_changes", "lane_chg", "{:d}"),
    ("steps", "steps", "{:d}"),
    ("wall_s", "wall_s", "{:.2f}"),
    ("steps_per_s", "steps/s", "{:.1f}"),
)


def aggregate(results: list[EpisodeResult]) -> dict[str, Any]:
    """Means over episodes; crash rate as a fraction."""
    n = len(results)
    if n == 0:
        return {"episodes": 0}
    mean = lambda key: sum(getattr(r, key) for r in results) / n  # noqa: E731
    returns = [r.episode_return for r in results]
    std = math.sqrt(sum((x - mean("episode_return")) ** 2 for x in returns) / n)
    return {
        "episodes": n,
        "mean_return": mean("episode_return"),
        "std_return": std,
        "crash_rate": sum(r.crashed for r in results) / n,
        "mean_distance_m": mean("distance_m"),
        "mean_speed_mps": mean("mean_speed_mps"),
        "mean_lane_changes": mean("lane_changes"),
        "mean_steps": mean("steps"),
        "total_steps": sum(r.steps for r in results),
    }


def build_summary(
    args,
    loop: ClosedLoop,
    results,
    interrupted: bool,
    wall_s: float | None,
    complete: bool = True,
    pose_errors=None,
) -> dict[str, Any]:
    """The run summary; everything outside ``timing`` is the same for two identical runs."""
    stats = loop.bus.stats()
    total_steps = sum(r.steps for r in results)
    perception, perception_timing = perception_summary(loop)
    summary = {
        "command": "sim",
        "env": args.env,
        "planner": args.planner,
        "world": args.world,
        "seed": args.seed,
        "episodes_requested": args.episodes,
        "complete": complete and not interrupted,
        "interrupted": interrupted,
        "aggregate": aggregate(results),
        "episodes": [
            {k: v for k, v in r.as_dict().items() if k not in ("wall_s", "steps_per_s")}
            for r in results
        ],
        "bus": {
            name: {"count": s.count, "errors": s.errors, "rate_hz": s.rate_hz}
            for name, s in sorted(stats.items())
        },
        "missing_actions": loop.simulator.missing_actions,
        # Until the recorder closes, the recording is NAME.partial.mcap (see bus/recorder.py).
        "recording": None if args.no_record else "run.mcap" if complete else "run.partial.mcap",
        "transport": args.transport,
        "health": loop.health_report(),
        **perception,
        "timing": {
            "wall_s": wall_s,
            "steps_per_s": total_steps / wall_s if wall_s else None,
            "episode_wall_s": [r.wall_s for r in results],
            "callback_ms": {name: s.callback_ns / 1e6 for name, s in sorted(stats.items())},
            **perception_timing,
        },
    }
    if pose_errors:
        summary["localization"] = pose_errors.report()
    return summary


def finished_summary(
    args, snapshot: dict[str, Any], interrupted: bool, wall_s: float, health: dict | None
) -> dict[str, Any]:
    """The summary of an interrupted or aborted run: the one written after its last finished
    episode (whose counters leave the unfinished episode out), with the run's wall time and
    the planner's ``health`` as the run ended (its events say why a remote planner was lost)."""
    total_steps = snapshot["aggregate"]["total_steps"]
    return {
        **snapshot,
        "complete": False,
        "interrupted": interrupted,
        "health": health,
        # The recorder closed: the recording has its final name (with the partial episode).
        "recording": None if args.no_record else "run.mcap",
        "timing": {**snapshot["timing"], "wall_s": wall_s, "steps_per_s": total_steps / wall_s},
    }


def perception_summary(loop: ClosedLoop) -> tuple[dict[str, Any], dict[str, Any]]:
    """``({"perception": frames, detector, health}, {"perception": latencies [ms]})`` when a
    perception node runs in the loop, else two empty dicts: the latencies belong under
    ``timing``, the only section allowed to differ between identical runs."""
    for runner in loop.node_runners:
        report = getattr(runner.node, "timing_report", None)
        if report is not None:
            counts = report()
            latencies = {key: counts.pop(key) for key in PERCEPTION_LATENCIES if key in counts}
            return (
                {"perception": {**counts, "health": runner.health_report()}},
                {"perception": latencies},
            )
    return {}, {}


def format_perception(report: dict[str, Any], latencies: dict[str, Any] | None) -> str:
    if not report.get("frames") or not latencies:
        return "perception: no camera frame processed"
    detector, step = latencies["detector_ms"], latencies["step_ms"]
    return (
        f"perception: {report['frames']} frames with {report['detector']}: detector "
        f"{detector['mean']:.1f} ms mean ({detector['p95']:.1f} p95), whole step "
        f"{step['mean']:.1f} ms mean ({step['p95']:.1f} p95), {1000.0 / step['mean']:.1f} FPS"
    )


def format_table(results: list[EpisodeResult]) -> str:
    rows = [[title for _, title, _ in TABLE_COLUMNS]]
    for result in results:
        values = result.as_dict()
        rows.append([fmt.format(values[key]) for key, _, fmt in TABLE_COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS))]
    return "\n".join(
        "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
    )


def format_aggregate(agg: dict[str, Any]) -> str:
    if not agg.get("episodes"):
        return "no finished episodes"
    return (
        f"{agg['episodes']} episodes: return {agg['mean_return']:.2f} +/- {agg['std_return']:.2f}, "
        f"crash rate {agg['crash_rate']:.0%}, distance {agg['mean_distance_m']:.0f} m, "
        f"speed {agg['mean_speed_mps']:.1f} m/s, lane changes {agg['mean_lane_changes']:.1f}, "
        f"steps {agg['mean_steps']:.1f}"
    )


def format_localization(report: dict[str, Any]) -> str:
    if not report.get("frames"):
        return "localization: no pose estimated"
    return (
        f"localization: {report['frames']} poses, error median {report['median_m']:.2f} m, "
        f"p95 {report['p95_m']:.2f} m, {100 * report['within_1m']:.0f} % within 1 m, "
        f"heading {report['median_heading_deg']:.2f} deg, "
        f"{100 * report['tracking_share']:.0f} % with a fused fix; dead reckoning on the "
        f"same noiseless odometry: median {report['dead_reckoning']['median_m']:.2f} m, "
        f"p95 {report['dead_reckoning']['p95_m']:.2f} m"
    )


def print_report(out: Path, results: list[EpisodeResult], summary: dict[str, Any]) -> None:
    """Print the per-episode table of ``results``, then the aggregate, perception and
    localization lines of ``summary`` (those present) and where ``summary.json`` is in ``out``."""
    print(format_table(results))
    print(format_aggregate(summary["aggregate"]))
    if "perception" in summary:
        print(format_perception(summary["perception"], summary["timing"].get("perception")))
    if "localization" in summary:
        print(format_localization(summary["localization"]))
    print(f"summary: {out / 'summary.json'}")
