"""The keeper of the tests' Ray cluster (tests.support.ray_cluster): a process of its own that starts a
`ray.cluster_utils.Cluster` (a head and a second node of one CPU each), adds and removes nodes when a test asks over a
local control connection, and shuts the cluster down when the last test worker detaches or the test run's main
process is gone. Imports only Ray and the standard library: it starts in the time Ray takes.

    python -m tests.support.ray_keeper --state STATE.json --watch PID --ready-fd FD
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from multiprocessing.connection import Listener
from pathlib import Path

AUTHKEY = b"evud-ray-cluster-tests"
# Node death is noticed in about a second (Ray's default health check takes 15 s): a removed node's tasks are retried
# elsewhere while the test waits.
_SYSTEM_CONFIG = {"health_check_period_ms": 300, "health_check_failure_threshold": 3}
_WATCH_S = 0.5


def _keep(state: Path, watched: int, ready_fd: int) -> None:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "_system_config": _SYSTEM_CONFIG})
    cluster.add_node(num_cpus=1)
    added = {}
    listener = Listener(("127.0.0.1", 0), authkey=AUTHKEY)
    attached, stopping = 0, threading.Event()

    def watch() -> None:  # the test run ended without detaching (killed): stop anyway
        while not stopping.is_set():
            try:
                os.kill(watched, 0)
            except ProcessLookupError:
                stopping.set()
                listener.close()
                return
            time.sleep(_WATCH_S)

    threading.Thread(target=watch, daemon=True).start()
    state.write_text(json.dumps({"address": cluster.address, "control": list(listener.address), "pid": os.getpid()}))
    os.write(ready_fd, b"ready\n")
    os.close(ready_fd)
    try:
        while not stopping.is_set():
            try:
                connection = listener.accept()
            except OSError:
                break
            with connection:
                command, *args = connection.recv()
                try:
                    if command == "attach":
                        attached += 1
                        answer: object = attached
                    elif command == "detach":
                        attached -= 1
                        if attached <= 0:
                            state.unlink(missing_ok=True)  # before answering: no worker attaches to a keeper leaving
                            stopping.set()
                        answer = attached
                    elif command == "add_node":
                        node = cluster.add_node(num_cpus=1)
                        added[node.node_id] = node
                        answer = node.node_id
                    elif command == "remove_node":  # a node this keeper added; once removed, nothing to do
                        if args[0] in added:
                            cluster.remove_node(added.pop(args[0]))
                        answer = None
                    else:
                        answer = ValueError(f"unknown command {command}")
                except Exception as err:  # noqa: BLE001  the test that asked gets it
                    answer = err
                connection.send(answer)
    finally:
        state.unlink(missing_ok=True)
        cluster.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="keep a 2-node Ray cluster for a test run")
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--watch", type=int, required=True)
    parser.add_argument("--ready-fd", type=int, required=True)
    arguments = parser.parse_args()
    _keep(arguments.state, arguments.watch, arguments.ready_fd)
