"""One module per ``drivestack`` subcommand, each with ``add_parser(subparsers)`` that sets
``handler``. Add a new command's module to :data:`COMMANDS`."""

from sim.commands import sim, train_policy, train_sign_classifier

COMMANDS = [sim, train_sign_classifier, train_policy]
