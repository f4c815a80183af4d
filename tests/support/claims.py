"""A claim held by another process, as a concurrent run (or a run in a container since restarted) holds one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_HOLD = """
import sys
from pathlib import Path
from evud.core.store import Claims
claims = Claims(Path(sys.argv[1]))
assert claims.claim(sys.argv[2]), "the claim is already held"
print("held", flush=True)
sys.stdin.read()  # hold it until the test closes stdin or kills this process
"""


@contextmanager
def claim_holder(root: Path, key: str, hostname: str | None = None) -> Iterator[subprocess.Popen]:
    """A child process holding the claim on `key` in the claims folder `root` (under another hostname, as a
    container restarted since would have, when `hostname` is given: needs root and util-linux's unshare).

    Yields once the child holds the claim (it says so); the child is killed on exit if still alive."""
    command = [sys.executable, "-c", _HOLD, str(root), key]
    if hostname is not None:
        unshare = shutil.which("unshare")
        assert unshare, "unshare (util-linux) is needed to hold a claim under another hostname"
        command = [unshare, "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname, *command]
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held", "the holder could not claim"
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
