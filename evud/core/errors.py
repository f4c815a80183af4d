"""Problems the user can act on, and how a stage reports them: one line naming what to change, no traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable


class UserError(Exception):
    """A problem the user can fix (a param, a file, credentials, a budget); the message says what to do."""


class EngineError(UserError):
    """The engine the environment asks for cannot run (Ray selected but not installed, a cluster not reachable)."""


def run_stage(stage: str, body: Callable[[], object], on_interrupt: str) -> None:
    """Run a stage's body; a UserError or Ctrl-C ends it with one line on stderr and a non-zero exit."""
    try:
        body()
    except UserError as err:
        message = str(err)
        sys.exit(message if message.startswith(f"{stage}:") else f"{stage}: {message}")
    except KeyboardInterrupt:
        print(f"\n{stage}: interrupted; {on_interrupt}", file=sys.stderr)
        sys.exit(130)
