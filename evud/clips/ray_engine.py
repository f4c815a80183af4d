"""The Ray executor (evud.clips.engines): each call a Ray task on the cluster RAY_ADDRESS names.

Attached, never owned: `ray.init(address=...)` joins the running cluster as a driver and `ray.shutdown()` only
disconnects it; a connection this process already had (a notebook, a benchmark) is used and left open. Tasks get
small records (source URLs, window lists, cut keys, the store's path) and return small outcome records: video bytes
never pass through Ray's object store, the task reads its source's ranges and writes the shared store itself.
A task whose worker or node dies is run again elsewhere, up to MAX_RETRIES times; Ctrl-C cancels every task of the
run on the cluster (ray.cancel) and waits for them to end before the stage cleans up.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from evud.core.errors import EngineError

# A task is retried this many times when its worker or node dies (preemption, OOM kill, a lost host): enough to
# ride out a node or two going away, bounded so a task that kills every worker it lands on ends `failed`.
MAX_RETRIES = 3
_STOP_WAIT_S = 30.0  # how long Ctrl-C waits for the cancelled tasks' workers to be gone
_CONNECT_TIMEOUT_S = 10.0


def _on_node(function: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """The task: the function's result, with the node that produced it (the metrics count distinct nodes)."""
    return ray.get_runtime_context().get_node_id(), function(*args)


def _check_listening(address: str) -> None:
    """Fail fast when nothing listens at a `host:port` address: ray.init would wait minutes for a GCS that is not
    there. (`ray://` client addresses and `auto` are left to Ray.)"""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return
    with socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT_S):
        pass


class RayTasks:
    name = "ray"
    shares_workspace = False  # a task may run on another host: the driver links what data/clips needs

    def __init__(self, address: str, stage: str):
        self.address = address
        self.stage = stage
        self.nodes: set[str] = set()
        self._connected_here = False

    def connect(self) -> None:
        """Attach to the cluster (once; a connection this process already has is used as it is)."""
        if ray.is_initialized():
            return
        try:
            _check_listening(self.address)
            ray.init(address=self.address, logging_level=logging.WARNING, configure_logging=False)
        except (OSError, RayError, ValueError) as err:
            raise EngineError(f"{self.stage}: the Ray cluster at RAY_ADDRESS={self.address} cannot be reached "
                              f"({type(err).__name__}: {err}); start it (`ray start --head`), fix RAY_ADDRESS, or "
                              "unset it to run on this machine's worker pool.") from None
        self._connected_here = True

    def describe(self) -> str:
        self.connect()
        alive = [n for n in ray.nodes() if n.get("Alive")]
        cpus = ray.cluster_resources().get("CPU", 0)
        gcs = ray.get_runtime_context().gcs_address
        return (f"the Ray cluster at {self.address} (GCS {gcs}; {len(alive)} node(s) alive, {cpus:g} CPU(s); "
                f"Ray {ray.__version__})")

    def run(self, function: Callable[..., Any], calls: Sequence[tuple], on_result: Callable[[Any], None],
            on_lost: Callable[[tuple, str], None]) -> None:
        self.connect()
        task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)(_on_node)
        refs = {task.remote(function, *call): call for call in calls}
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                if pending:  # and every other one finished meanwhile: one pass, not one wait per task
                    more, pending = ray.wait(pending, num_returns=len(pending), timeout=0)
                    ready += more
                for ref in ready:
                    self._deliver(ref, refs[ref], on_result, on_lost)
        except BaseException:
            self._cancel(pending)
            raise

    def _deliver(self, ref: Any, call: tuple, on_result: Callable[[Any], None],
                 on_lost: Callable[[tuple, str], None]) -> None:
        try:
            node, result = ray.get(ref)
        except RayTaskError:
            raise  # the function itself raised (it never should): a bug, surfaced as the local pool surfaces it
        except RayError as err:  # every attempt died with its worker or node: the call's items fail, with why
            on_lost(call, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            return
        self.nodes.add(node)
        on_result(result)

    def on_every_node(self, function: Callable[..., Any], *args: Any) -> dict[str, Any]:
        """One task pinned to each alive node (no CPU asked: it runs beside the cutting)."""
        self.connect()
        probe = ray.remote(num_cpus=0, max_retries=0)(_on_node)
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
                .remote(function, *args) for node in ray.nodes() if node.get("Alive")]
        return dict(ray.get(refs))

    @staticmethod
    def _cancel(pending: list[Any]) -> None:
        """Cancel the run's tasks on the cluster and wait until they have ended (their workers killed)."""
        for ref in pending:
            ray.cancel(ref, force=True)
        if pending:
            ray.wait(pending, num_returns=len(pending), timeout=_STOP_WAIT_S)

    def close(self) -> None:
        """Disconnect this driver if it connected (the cluster itself keeps running: it is not ours)."""
        if self._connected_here:
            ray.shutdown()
            self._connected_here = False

    def node_count(self) -> int:
        return len(self.nodes)
