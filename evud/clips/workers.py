"""Cutting processes that die with the stage: a pool whose workers exit when the stage process does, even by
kill -9, so no worker cuts on alone and a re-run never races leftovers; Ctrl-C is the stage's to handle."""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor

_ORPHAN_CHECK_S = 0.5


def _die_with_parent(parent: int) -> None:
    """Make this worker exit when the stage process dies, even by kill -9 (it would otherwise cut on alone)."""
    try:  # Linux: the kernel sends SIGKILL the moment the parent exits
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:  # elsewhere (and as a second guard): notice being re-parented
        while os.getppid() == parent:
            time.sleep(_ORPHAN_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def worker_init(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the stage process's to handle, once
    _die_with_parent(parent)


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool whose workers ignore Ctrl-C and die with this process."""
    return ProcessPoolExecutor(max_workers=workers, initializer=worker_init, initargs=(os.getpid(),))


_STOP_WAIT_S = 5.0


def stop_now(pool: ProcessPoolExecutor) -> None:
    """Terminate the workers (Ctrl-C or an error in the stage) and wait for them to be gone: none cuts on after the
    stage ended, and what they were writing can be cleaned up."""
    processes = list(getattr(pool, "_processes", {}).values())
    for process in processes:
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(_STOP_WAIT_S)
