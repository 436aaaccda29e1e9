"""One module per ``drivestack`` subcommand, each with ``add_parser(subparsers)`` that sets
``handler``. Add a new command's module to :data:`COMMANDS`."""

from sim.commands import (
    autolabel,
    build_map,
    eval_localizer,
    eval_policy,
    eval_video,
    log,
    make_dataset,
    node,
    sim,
    train_detector,
    train_localizer,
    train_policy,
    train_sign_classifier,
    zoom_dataset,
)

COMMANDS = [
    sim,
    make_dataset,
    eval_video,
    autolabel,
    zoom_dataset,
    train_detector,
    train_sign_classifier,
    train_policy,
    eval_policy,
    log,
    node,
    build_map,
    train_localizer,
    eval_localizer,
]
