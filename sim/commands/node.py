"""``drivestack node``: run one node as its own process, connected to the others over Zenoh."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import time
from dataclasses import dataclass

from sim.commands.args import positive_float

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeKind:
    outputs: tuple[str, ...]
    description: str


NODE_KINDS = {
    "planner": NodeKind(
        ("/planning/action",),
        "reads /sim/ego, /sim/objects, /sim/lanes; publishes /planning/action",
    ),
}


def node_kind(text: str) -> str:
    if text not in NODE_KINDS:
        raise argparse.ArgumentTypeError(
            f"unknown node {text!r}; choose one of: {', '.join(sorted(NODE_KINDS))}"
        )
    return text


def add_parser(subparsers) -> None:
    from bus.transport.zenoh import DEFAULT_ENDPOINT
    from planning.factory import planner_kinds

    kinds = "; ".join(f"{name}: {kind.description}" for name, kind in NODE_KINDS.items())
    parser = subparsers.add_parser(
        "node",
        help="run a node (the planner) as a separate process over Zenoh",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Run one node in its own process. It receives its input topics from, and sends its\n"
            "outputs to, the other processes over Eclipse Zenoh (peer mode, multicast scouting\n"
            "off, explicit tcp endpoints). Node kinds: " + kinds + ".\n\n"
            "A two-process drive: start the planner, which listens on a loopback port,\n"
            f"    drivestack node planner --transport zenoh --listen {DEFAULT_ENDPOINT}\n"
            "then the simulator, which connects to it and steps in lockstep with it (it waits\n"
            "for the planner's action on each state before stepping):\n"
            f"    drivestack sim --transport zenoh --zenoh-connect {DEFAULT_ENDPOINT}\n"
            "The node runs until interrupted (Ctrl-C or SIGTERM) or until --max-idle-s passes\n"
            "without input, then prints its message and health counters as JSON."
        ),
    )
    parser.add_argument(
        "kind",
        nargs="?",  # checked in run(), so that a missing NODE error lists the choices
        type=node_kind,
        metavar="NODE",
        help=f"which node to run: {', '.join(sorted(NODE_KINDS))}",
    )
    parser.add_argument(
        "--planner",
        default="rule",
        metavar="SPEC",
        help=f"planner spec for the planner node: {', '.join(planner_kinds())} or "
        "KIND:MODEL_PATH (default: %(default)s)",
    )
    parser.add_argument(
        "--transport",
        choices=("zenoh",),
        default="zenoh",
        help="how the node talks to the others (default: %(default)s)",
    )
    parser.add_argument(
        "--listen",
        action="append",
        default=None,
        metavar="ENDPOINT",
        help="tcp/HOST:PORT endpoint to accept connections on (repeatable; default "
        f"{DEFAULT_ENDPOINT} unless --connect is given)",
    )
    parser.add_argument(
        "--connect",
        action="append",
        default=[],
        metavar="ENDPOINT",
        help="tcp/HOST:PORT endpoint of a peer to connect to (repeatable)",
    )
    # TODO(#3): learn the control rate from the simulator (e.g. from its liveliness token or a
    # latched topic) instead of asking; a wrong value makes the health checks misjudge inputs.
    parser.add_argument(
        "--control-rate-hz",
        type=positive_float,
        default=1.0,
        metavar="HZ",
        help="rate of control-rate topics for the input health checks "
        "(highway-env policy_frequency; default: %(default)s)",
    )
    parser.add_argument(
        "--max-idle-s",
        type=positive_float,
        default=None,
        metavar="S",
        help="exit after this long without any input (default: run until stopped)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from bus import Bus
    from bus.node import NodeRunner
    from bus.transport.zenoh import DEFAULT_ENDPOINT, ZenohBridge, ZenohConfig
    from planning.factory import make_planner

    if args.kind is None:
        raise ValueError(
            f"name the node to run (NODE), one of: {', '.join(sorted(NODE_KINDS))}; "
            "e.g. 'drivestack node planner'"
        )
    listen = (
        args.listen if args.listen is not None else ([] if args.connect else [DEFAULT_ENDPOINT])
    )
    config = ZenohConfig(listen=tuple(listen), connect=tuple(args.connect))
    node = make_planner(args.planner)
    bus = Bus()
    runner = NodeRunner(node, bus, control_rate_hz=args.control_rate_hz)
    bridge = ZenohBridge(
        bus,
        config,
        outbound=NODE_KINDS[args.kind].outputs,
        inbound=node.inputs,
        name=f"{args.kind}/{node.name}",
    )
    stop = _stop_on_sigterm()
    logger.info(
        "%s node (%s) up: listen %s, connect %s",
        args.kind,
        node.name,
        ", ".join(listen) or "-",
        ", ".join(args.connect) or "-",
    )
    last_input = time.monotonic()
    try:
        while not stop["now"]:
            if bridge.poll(timeout_s=0.1):
                last_input = time.monotonic()
            elif args.max_idle_s is not None and time.monotonic() - last_input > args.max_idle_s:
                logger.info("no input for %.1f s: exiting", args.max_idle_s)
                break
    except KeyboardInterrupt:
        pass
    finally:
        bridge.close()
        runner.close()
    report = {
        "node": args.kind,
        "planner": args.planner,
        "transport": bridge.stats.as_dict(),
        "health": runner.health_report(),
    }
    print(json.dumps(report))
    return 0


def _stop_on_sigterm() -> dict[str, bool]:
    stop = {"now": False}

    def handler(signum, frame) -> None:  # noqa: ARG001
        stop["now"] = True

    signal.signal(signal.SIGTERM, handler)
    return stop


def add_transport_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``drivestack sim`` for a planner running in another process."""
    from bus.transport.zenoh import DEFAULT_ENDPOINT, DEFAULT_MAX_CONSECUTIVE_TIMEOUTS
    from sim.commands.args import positive_int

    group = parser.add_argument_group(
        "transport", "run the planner in a separate process ('drivestack node planner --help')"
    )
    group.add_argument(
        "--transport",
        choices=("inproc", "zenoh"),
        default="inproc",
        help="inproc: the planner runs in this process on its bus; zenoh: the "
        "planner is a 'drivestack node planner' process and the simulator "
        "waits for its action at every step (default: %(default)s)",
    )
    group.add_argument(
        "--zenoh-connect",
        action="append",
        default=None,
        metavar="ENDPOINT",
        help="tcp/HOST:PORT of the planner node to connect to (repeatable; "
        f"default {DEFAULT_ENDPOINT} unless --zenoh-listen is given)",
    )
    group.add_argument(
        "--zenoh-listen",
        action="append",
        default=[],
        metavar="ENDPOINT",
        help="tcp/HOST:PORT to accept the planner's connection on instead",
    )
    group.add_argument(
        "--action-timeout-s",
        type=positive_float,
        default=10.0,
        metavar="S",
        help="longest wait for the remote planner's action on a step; after it the "
        "simulator applies its default action (default: %(default)s)",
    )
    group.add_argument(
        "--max-action-timeouts",
        type=positive_int,
        default=DEFAULT_MAX_CONSECUTIVE_TIMEOUTS,
        metavar="N",
        help="stop the run with an error after N steps in a row without the remote "
        "planner's action (it died or hangs); finished episodes stay in summary.json "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--connect-timeout-s",
        type=positive_float,
        default=20.0,
        metavar="S",
        help="longest wait for the planner node to appear (default: %(default)s)",
    )


def uses_remote_planner(args: argparse.Namespace) -> bool:
    """Whether ``drivestack sim`` drives a remote planner; rejects contradictory options."""
    remote = getattr(args, "transport", "inproc") == "zenoh"
    if remote and args.planner not in ("rule", "remote"):
        raise ValueError(
            f"with --transport zenoh the planner runs in its own process; choose it "
            f"there ('drivestack node planner --planner {args.planner}') and omit "
            "--planner here"
        )
    if not remote and args.planner == "remote":
        raise ValueError("--planner remote needs --transport zenoh")
    return remote


class RemotePlanner:
    """The simulator side of a two-process drive: a Zenoh bridge sending ``/sim/*`` and
    receiving ``/planning/action``, in lockstep with the loop."""

    def __init__(self, args: argparse.Namespace, loop) -> None:
        from bus.transport.zenoh import DEFAULT_ENDPOINT, LockstepActions, ZenohBridge, ZenohConfig

        connect = (
            args.zenoh_connect
            if args.zenoh_connect is not None
            else ([] if args.zenoh_listen else [DEFAULT_ENDPOINT])
        )
        config = ZenohConfig(listen=tuple(args.zenoh_listen), connect=tuple(connect))
        state_topics = ("/sim/lanes", "/sim/objects", "/sim/ego")
        self.bridge = ZenohBridge(
            loop.bus, config, outbound=state_topics, inbound=("/planning/action",), name="simulator"
        )
        self.lockstep = LockstepActions(
            self.bridge,
            state_topics=state_topics,
            timeout_s=args.action_timeout_s,
            max_consecutive_timeouts=args.max_action_timeouts,
        )
        loop.await_action = self.lockstep
        peers = self.bridge.wait_for_node("planner", args.connect_timeout_s)
        if not peers:
            self.bridge.close()
            raise OSError(
                f"no planner node appeared over zenoh ({', '.join(connect or args.zenoh_listen)}) "
                f"within {args.connect_timeout_s:.0f} s; start one with 'drivestack node "
                "planner --transport zenoh'"
            )
        logger.info("remote planner node(s) up: %s", ", ".join(peers))

    def report(self) -> dict:
        return {**self.bridge.stats.as_dict(), "action_timeouts": self.lockstep.timeouts}

    def close(self) -> None:
        self.bridge.close()
