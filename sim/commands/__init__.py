"""One module per ``drivestack`` subcommand, each with ``add_parser(subparsers)`` that sets
``handler``. Add a new command's module to :data:`COMMANDS`."""

from sim.commands import sim

COMMANDS = [sim]
