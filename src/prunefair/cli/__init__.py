"""The command line: parses arguments and calls the Python API, nothing more. One module a group of commands
(``run``: study, group-size; ``folder``: report, status; ``models``: audit, diagnose, presets); ``common`` holds
the app and what they share."""

from prunefair.cli.common import app
from prunefair.cli import run, folder, models  # noqa: E402,F401 (each registers its commands, in this order)

_COMMANDS = (run, folder, models)

__all__ = ["app", "main"]


def main() -> None:
    app()
