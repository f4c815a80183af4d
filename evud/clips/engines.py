"""Where the clip tasks run: this machine's worker pool, or the tasks of a Ray cluster. One interface, two small
executors, chosen in one place (`engine_from_environment`); nothing else knows which one ran the work.

Without `RAY_ADDRESS` the local pool runs them, as it always did. With `RAY_ADDRESS` naming a running cluster (or a
`ray://` client address) every task runs there as a Ray task: the cluster is attached to, never started or stopped
(`ray.init()` without an address would also attach to the last `ray start` on this machine, so a stale local
cluster could capture a plain run: only an explicit RAY_ADDRESS selects Ray). The Ray executor lives in
evud.clips.ray_engine, imported only when selected: Ray is an optional extra (`pip install -e ".[ray]"`).

An executor calls one plain function on small argument tuples and hands back small results as they finish; the
function reads its sources and writes its store itself (no video bytes through the executor). Every executor is
at-least-once (a node that dies has its tasks run again elsewhere): the function must be idempotent, as the clip task
is (content-addressed store, temp file then rename, a stored clip is reused, not cut again).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, wait
from pathlib import Path
from typing import Any, Protocol

from evud.clips.workers import process_pool, stop_now
from evud.core.errors import EngineError

RAY_ADDRESS_VAR = "RAY_ADDRESS"


class Engine(Protocol):
    """Runs `function(*call)` for each call; `on_result(result)` in this process as each finishes, `on_lost(call,
    reason)` for a call whose every attempt died with its worker or node (the function itself never raises).

    When `run` raises (Ctrl-C, an error), no call of it is still running anywhere: what they left half-written can
    be cleaned up. `node_count()`: how many distinct nodes (hosts) ran calls (the metrics' `nodes`)."""

    name: str  # "local" or "ray": the metrics' `engine`
    shares_workspace: bool  # calls can write this process's working directory (data/clips) directly

    def describe(self) -> str: ...

    def run(self, function: Callable[..., Any], calls: Sequence[tuple], on_result: Callable[[Any], None],
            on_lost: Callable[[tuple, str], None]) -> None: ...

    def on_every_node(self, function: Callable[..., Any], *args: Any) -> dict[str, Any]:
        """`function(*args)` once on each node the engine may run work on: node -> result."""
        ...

    def close(self) -> None: ...

    def node_count(self) -> int: ...


class LocalPool:
    """This machine's process pool (evud.clips.workers): workers that die with the stage."""

    name = "local"
    shares_workspace = True

    def __init__(self, workers: int):
        self.workers = workers

    def describe(self) -> str:
        return f"the local worker pool ({self.workers} worker(s) on {socket.gethostname()})"

    def run(self, function: Callable[..., Any], calls: Sequence[tuple], on_result: Callable[[Any], None],
            on_lost: Callable[[tuple, str], None]) -> None:
        """A worker that dies breaks the pool and the run (as it always did): there is no other machine to retry on."""
        pool = process_pool(self.workers)
        try:
            futures = {pool.submit(function, *call) for call in calls}
            while futures:
                done, futures = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    on_result(future.result())
        except BaseException:
            stop_now(pool)
            raise
        pool.shutdown()

    def on_every_node(self, function: Callable[..., Any], *args: Any) -> dict[str, Any]:
        return {socket.gethostname(): function(*args)}

    def close(self) -> None:
        pass

    def node_count(self) -> int:
        return 1  # one machine, whatever ran


def engine_from_environment(workers: int, stage: str) -> Engine:
    """The one place the engine is chosen: Ray when RAY_ADDRESS is set, else the local pool of `workers`."""
    address = os.environ.get(RAY_ADDRESS_VAR, "").strip()
    if not address:
        return LocalPool(workers)
    try:
        from evud.clips.ray_engine import RayTasks  # imports ray
    except ImportError as err:
        raise EngineError(
            f"{stage}: {RAY_ADDRESS_VAR} is set ({address}) but Ray cannot be imported here ({err}): install it with "
            f"`pip install -e \".[ray]\"` to run on that cluster, or unset {RAY_ADDRESS_VAR} to run on this "
            "machine's worker pool.") from None
    engine = RayTasks(address, stage)
    engine.connect()  # at once: a wrong address fails before any planning, not after
    return engine


def check_reachable(engine: Engine, directory: Path, stage: str, what: str) -> None:
    """Stop with one line when a node the engine runs work on cannot see `directory` (a store every node must
    share): its tasks would write where this process never looks."""
    if engine.shares_workspace:
        return
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / f".reachable-{uuid.uuid4().hex}"
    marker.write_text(f"written by {socket.gethostname()} to check that every node sees this directory\n")
    try:
        blind = sorted(node for node, seen in engine.on_every_node(os.path.exists, str(marker)).items() if not seen)
    finally:
        marker.unlink(missing_ok=True)
    if blind:
        raise EngineError(
            f"{stage}: {len(blind)} node(s) of {engine.describe()} cannot see the {what} {directory} "
            f"(node(s) {', '.join(n[:12] for n in blind)}): put it on a file system every node mounts at the same path "
            "(NFS, EFS, Filestore, CephFS, Lustre) with EVUD_STORE, or unset RAY_ADDRESS to run on this machine.")
