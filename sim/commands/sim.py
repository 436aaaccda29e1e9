"""``drivestack sim``: closed-loop drives with a table, a JSON summary and an MP4."""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from bus import Bus
from bus.atomic import check_writable_dir, write_json
from bus.recorder import Recorder
from bus.transport import RemoteNodeLost
from sim.camera import CameraConfig
from sim.camera.video import CameraVideoRecorder
from sim.commands.args import add_env_argument, nonnegative_int, output_dir, positive_int
from sim.commands.node import RemotePlanner, add_transport_arguments, uses_remote_planner
from sim.commands.sim_report import build_summary, finished_summary, print_report
from sim.envs import check_env_id
from sim.loop import ClosedLoop, EpisodeResult
from sim.simulator import SimConfig
from sim.video import Mp4Writer, draw_overlay
from sim.world import WORLD_PRESETS, world_preset

logger = logging.getLogger(__name__)

PERCEPTION_THREADS = 1
"""CPU threads of the detector with ``--perception``."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="run closed-loop drives in highway-env",
        description=(
            "Drive episodes in highway-env with a planner in the closed loop: the simulator "
            "publishes ego state, objects and lanes on the bus, the planner answers with a "
            "meta-action. Prints a per-episode table and a summary, writes OUT/summary.json, "
            "OUT/episode_NNN.mp4 top-down videos and OUT/run.mcap, the recording of every bus "
            "message (inspect it with 'drivestack log'; OUT/run.partial.mcap while running). "
            "Ctrl-C keeps the finished episodes."
        ),
    )
    add_env_argument(parser)
    parser.add_argument(
        "--episodes", type=positive_int, default=3, help="number of episodes (default: %(default)s)"
    )
    parser.add_argument(
        "--seed",
        type=nonnegative_int,
        default=0,
        help="seed of the first episode; episode i uses SEED+i (default: %(default)s)",
    )
    parser.add_argument(
        "--planner",
        default="rule",
        metavar="SPEC",
        help="planner: rule, random, dqn (the shipped DQN policy), KIND:PATH "
        "(dqn:POLICY.pt, qlearning:QTABLE.npz), or a bare policy file (.pt/.json: DQN, "
        ".npz: Q-learning) (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=output_dir,
        default="runs/sim",
        metavar="DIR",
        help="output directory for summary.json and videos (default: %(default)s)",
    )
    parser.add_argument(
        "--video-episodes",
        type=nonnegative_int,
        default=1,
        metavar="N",
        help="write an MP4 for the first N episodes, 0 for none (default: %(default)s)",
    )
    parser.add_argument(
        "--camera-video",
        action="store_true",
        help="also render the front camera: for the first --video-episodes "
        "episodes write OUT/camera_NNN.mp4 (every simulation frame) with "
        "labels OUT/camera_NNN_labels/FFFFFF.txt (YOLO) and "
        "OUT/camera_NNN.jsonl (exact boxes and lane lines)",
    )
    parser.add_argument(
        "--world",
        choices=tuple(WORLD_PRESETS),
        default="stack",
        help="stack: trucks and roadside pedestrians join highway-env's traffic; "
        "plain: highway-env's own traffic, as the learned policies were "
        "trained (default: %(default)s)",
    )
    parser.add_argument(
        "--perception",
        action="store_true",
        help="also run the front camera and the camera perception node (shipped YOLO "
        "detector, ByteTrack, lanes, signs) in the loop: it publishes /perception/detections, "
        "/perception/objects, /perception/lanes and /perception/signs, recorded in "
        "OUT/run.mcap, and the summary gets its timing. The planner still plans on ground "
        "truth (/sim/objects)",
    )
    parser.add_argument(
        "--localize",
        action="store_true",
        help="also run the front camera and the localization node (HD map of the episode's "
        "world, shipped CNN landmark localizer with lane dashes, EKF on noiseless odometry) "
        "in the loop, started from the first ego pose: it publishes /mapping/pose and "
        "/mapping/fix, recorded in OUT/run.mcap, and the summary gets its error against the "
        "true ego pose, with dead reckoning on the same odometry as a baseline. The planner "
        "still plans on the true ego state",
    )
    parser.add_argument(
        "--map",
        default=None,
        metavar="FILE",
        help="with --localize: localize against this HD map file (from 'drivestack "
        "build-map') instead of the map of each episode's world. A map holds the world of one "
        "env and seed, so the run must drive that seed only (--episodes 1 --seed SEED); the "
        "map is checked against that world (lanes, landmarks) before the run",
    )
    parser.add_argument(
        "--localizer-weights",
        default=None,
        metavar="FILE",
        help="with --localize: localizer CNN state_dict, e.g. OUT/localizer.pt of "
        "'drivestack train-localizer' (default: the shipped weights)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--no-record",
        action="store_true",
        help="do not record the bus to OUT/run.mcap (MCAP with JSON messages and "
        "JSON Schemas: open it in Foxglove or with 'drivestack log')",
    )
    add_transport_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from planning.factory import make_planner, planner_spec

    # Check everything before touching the output directory.
    check_env_id(args.env)
    remote = uses_remote_planner(args)
    planner = None if remote else make_planner(args.planner)
    perception = _make_perception(args)
    localization = _make_localization(args, lambda: loop.simulator)
    if args.world == "stack" and planner_spec(args.planner).split(":")[0] in ("dqn", "qlearning"):
        logger.warning(
            "learned policies were trained on highway-env's own traffic; with "
            "--world stack they also meet trucks and pedestrians (try --world plain)"
        )
    out = check_writable_dir(args.out)
    bus = Bus()
    # Subscribed before the planner, the recorder writes each state before the action it causes.
    recorder = (
        None
        if args.no_record
        else Recorder(
            out / "run.mcap",
            bus,
            metadata={
                "command": "sim",
                "env": args.env,
                "planner": args.planner,
                "seed": str(args.seed),
            },
        )
    )
    # Before the nodes subscribe: it must see each /sim/ego before the pose estimated from it.
    pose_errors = _pose_error_monitor(bus) if localization else None
    results: list[EpisodeResult] = []
    # The summary as of the last finished episode: an interrupted run reports it, so the
    # counters (bus, perception, localization) leave out the unfinished episode.
    finished: dict[str, Any] = {}
    loop = link = None
    interrupted = False
    aborted: str | None = None
    started = time.perf_counter()
    try:
        camera = CameraConfig() if args.camera_video or perception or localization else None
        sim_config = SimConfig(
            env_id=args.env,
            render=args.video_episodes > 0,
            camera=camera,
            world=world_preset(args.world),
        )
        nodes = tuple(node for node in (perception, localization) if node)
        loop = ClosedLoop(sim_config, planner, bus, nodes=nodes)
        if recorder:
            recorder.add_metadata({"control_rate_hz": str(loop.simulator.control_rate_hz)})
        link = RemotePlanner(args, loop) if remote else None
        _drive(args, loop, out, results, finished, pose_errors)
    except KeyboardInterrupt:
        interrupted = True
        logger.warning("interrupted: writing the summary of %d finished episode(s)", len(results))
    except RemoteNodeLost as error:
        aborted = str(error)
        logger.error("%s; keeping the %d finished episode(s)", aborted, len(results))
    finally:
        if loop:
            loop.close()
        if link:
            link.close()
        if recorder:
            # A run that finished no episode leaves no recording (nor replaces an earlier one).
            recorder.close() if results else recorder.abort()
    if loop is None or not results:
        print(f"drivestack sim: no episode finished; nothing written to {out}")
        return 130 if interrupted else 1
    wall_s = time.perf_counter() - started
    if interrupted or aborted:
        summary = finished_summary(
            args, finished["summary"], interrupted, wall_s, loop.health_report()
        )
    else:
        summary = build_summary(args, loop, results, False, wall_s, pose_errors=pose_errors)
    if link:
        summary["transport_stats"] = link.report()
    if aborted:
        summary.update(aborted=aborted, complete=False)
    write_json(out / "summary.json", summary)

    print_report(out, results, summary)
    if aborted:
        raise RemoteNodeLost(aborted)
    return 130 if interrupted else 0


STALE_OUTPUTS = (
    "run.mcap",
    "run.partial.mcap",
    "episode_[0-9]*.mp4",
    "camera_[0-9]*.mp4",
    "camera_[0-9]*.jsonl",
    "camera_[0-9]*_labels",
)


def _outputs_of_this_run(args: argparse.Namespace) -> set[str]:
    """Names of the run-level outputs this run has written once its first episode is done."""
    names = set() if args.no_record else {"run.partial.mcap"}
    if args.video_episodes > 0:
        names.add("episode_000.mp4")
        if args.camera_video:
            names.update({"camera_000.mp4", "camera_000.jsonl", "camera_000_labels"})
    return names


def _remove_stale_outputs(out: Path, keep: set[str]) -> None:
    """Delete videos and labels a previous run left in ``out`` that this run did not write."""
    for pattern in STALE_OUTPUTS:
        for path in out.glob(pattern):
            if path.name in keep:
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            logger.info("removed %s left by an earlier run", path)


def _drive(
    args: argparse.Namespace,
    loop: ClosedLoop,
    out: Path,
    results: list[EpisodeResult],
    finished: dict[str, Any],
    pose_errors=None,
) -> None:
    from sim.progress import progress_bar

    config = loop.simulator.env.unwrapped.config
    # merge-v0 has no time limit: it ends where the ramp ends, so the bar counts episodes.
    max_steps = int(config["duration"] * config["policy_frequency"]) if "duration" in config else 0
    with progress_bar(
        enabled=not args.no_progress,
        total=args.episodes * (max_steps or 1),
        unit="step" if max_steps else "episode",
        desc=f"{args.env} {args.planner}",
        leave=False,
    ) as bar:
        for episode in range(args.episodes):
            video = camera_video = None
            if episode < args.video_episodes:
                video = Mp4Writer(
                    out / f"episode_{episode:03d}.mp4", fps=loop.simulator.simulation_rate_hz
                )
                if args.camera_video:
                    camera_video = CameraVideoRecorder(loop.simulator, out, episode)
            try:
                result = loop.run_episode(
                    episode,
                    args.seed + episode,
                    on_frame=(lambda frame, info, v=video: v.write(_annotate(frame, info)))
                    if video
                    else None,
                    on_step=(lambda _: bar.update(1)) if max_steps else None,
                )
            except BaseException:
                if video:
                    video.abort()
                if camera_video:
                    camera_video.abort()
                raise
            if video:
                video.close()
            if camera_video:
                camera_video.close()
            bar.update(max_steps - result.steps if max_steps else 1)
            snapshot = build_summary(
                args, loop, [*results, result], False, None, complete=False, pose_errors=pose_errors
            )
            finished["summary"] = snapshot
            results.append(result)
            if episode == 0:
                _remove_stale_outputs(out, keep=_outputs_of_this_run(args))
            bar.set_postfix(ret=f"{result.episode_return:.1f}", crashed=result.crashed)
            # Keep a readable summary of what is finished even if the process is killed.
            write_json(out / "summary.json", snapshot)


def _annotate(frame, info: dict[str, Any]):
    return draw_overlay(
        frame,
        [
            f"step {info['step']}  speed {info['speed_mps']:.1f} m/s  action {info['action']}",
        ],
    )


def _make_perception(args: argparse.Namespace):
    """The camera perception node for ``--perception`` (None without it), triggered by the
    ego state, which the simulator publishes after the camera image of the same step."""
    if not getattr(args, "perception", False):
        return None
    import torch

    from perception.node import PerceptionConfig, make_perception_node

    # One thread, as eval-video's default: on a shared CPU the detector ran 21 ms a frame
    # with one thread and 690 ms with two (measured here, 640x360).
    torch.set_num_threads(PERCEPTION_THREADS)
    return make_perception_node(config=PerceptionConfig(trigger="/sim/ego"))


def _make_localization(args: argparse.Namespace, simulator):
    """The localization node for ``--localize`` (None without it). ``simulator()`` returns
    the loop's simulator, whose world gives each episode's HD map."""
    if not getattr(args, "localize", False):
        for option in ("map", "localizer_weights"):
            if getattr(args, option, None):
                raise ValueError(f"--{option.replace('_', '-')} needs --localize")
        return None
    import torch

    from mapping.hdmap import HdMap, check_map_for, map_from_world, read_map
    from mapping.localizer import Localizer, load_net
    from mapping.node import LocalizationNode

    torch.set_num_threads(PERCEPTION_THREADS)
    localizer = Localizer(load_net(args.localizer_weights), HdMap())
    if args.map:
        hd_map = read_map(args.map)
        seeds = [args.seed + episode for episode in range(args.episodes)]
        advice = f"; run --episodes 1 --seed {hd_map.seed}, or drop --map"
        check_map_for(hd_map, args.map, args.env, seeds, advice)
        return LocalizationNode(localizer=localizer, map_source=lambda static: hd_map)
    return LocalizationNode(
        localizer=localizer,
        # The map's seed field is metadata; the world is the one just published.
        map_source=lambda static: map_from_world(simulator().env, static, 0, args.env),
    )


def _pose_error_monitor(bus: Bus):
    from mapping.node import PoseErrorMonitor

    return PoseErrorMonitor(bus)
