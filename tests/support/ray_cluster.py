"""A real multi-node Ray cluster on this machine (`ray.cluster_utils.Cluster`: a head and a second node of one CPU
each, the way Ray tests multi-node code), started once per test run and shared by its pytest-xdist workers.

The cluster lives in a small keeper process of its own (tests.support.ray_keeper), not in a test
worker: whichever worker needs it first starts the keeper, the others attach to it, and tests ask it to add or
remove nodes over a local control connection. Tests use the cluster one at a time (an exclusive lock: a test that
adds a node must not see another test's tasks on it). The keeper shuts the cluster down when the last worker that
attached detaches at the end of its session, or when the test run's main process is gone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Client
from pathlib import Path

import pytest

from tests.support.cloud import FAKE_AWS
from tests.support.fixtures import exclusive_lock, run_temp_root
from tests.support.ray_keeper import AUTHKEY


@dataclass
class RayCluster:
    """The shared cluster as a test sees it: its address, and the keeper that adds and removes nodes."""

    address: str
    control: tuple[str, int]

    def _ask(self, *command: object) -> object:
        with Client(self.control, authkey=AUTHKEY) as connection:
            connection.send(command)
            answer = connection.recv()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def add_node(self) -> str:
        """A node of one CPU; returns its node id once it is alive."""
        return str(self._ask("add_node"))

    def remove_node(self, node_id: str) -> None:
        """`cluster.remove_node`: the node's raylet and workers are killed, as when a host is lost."""
        self._ask("remove_node", node_id)

    @contextmanager
    def extra_node(self) -> Iterator[str]:
        """A node added for one test, gone after it whatever happens (the next test sees the two nodes only)."""
        node_id = self.add_node()
        try:
            yield node_id
        finally:
            self.remove_node(node_id)


# --- the fixture --------------------------------------------------------------------------------------------------


def _attach(state: Path) -> RayCluster | None:
    try:
        known = json.loads(state.read_text())
        cluster = RayCluster(known["address"], tuple(known["control"]))
        cluster._ask("attach")
        return cluster
    except (OSError, ValueError, KeyError, EOFError):
        return None  # no keeper, or one that is gone


def _start_keeper(state: Path, watched: int) -> RayCluster:
    # The nodes' own credentials (fake: every S3 a test uses is a local moto server, its endpoint named explicitly).
    environment = {**{k: v for k, v in os.environ.items() if not k.startswith(("EVUD_", "RAY_ADDRESS"))}, **FAKE_AWS}
    ready_read, ready_write = os.pipe()
    with open(state.with_name("keeper.log"), "ab") as log:
        keeper = subprocess.Popen([sys.executable, "-m", "tests.support.ray_keeper", "--state", str(state),
                                   "--watch", str(watched), "--ready-fd", str(ready_write)], stdout=log,
                                  stderr=subprocess.STDOUT, env=environment, pass_fds=(ready_write,),
                                  cwd=Path(__file__).resolve().parents[2], start_new_session=True)
    os.close(ready_write)
    with os.fdopen(ready_read, "rb") as ready:
        line = ready.readline()  # "ready" once the cluster is up; empty if the keeper died first
    if line.strip() != b"ready":
        raise RuntimeError(f"the Ray cluster for the tests did not start (exit {keeper.poll()}); see "
                           f"{state.with_name('keeper.log')}")
    cluster = _attach(state)
    if cluster is None:
        raise RuntimeError("the Ray cluster for the tests started but its keeper does not answer")
    return cluster


@pytest.fixture(scope="session")
def ray_cluster_session(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[RayCluster]:
    pytest.importorskip("ray")
    root = run_temp_root(tmp_path_factory, worker_id) / "ray-cluster"
    root.mkdir(exist_ok=True)
    with exclusive_lock(root / "keeper.lock"):
        # The keeper outlives no test run: it watches the run's main process (this one without xdist).
        watched = os.getpid() if worker_id == "master" else os.getppid()
        cluster = _attach(root / "state.json") or _start_keeper(root / "state.json", watched)
    yield cluster
    with exclusive_lock(root / "keeper.lock"):
        try:
            cluster._ask("detach")
        except (OSError, EOFError):
            pass  # the keeper is gone already (it stops when the run's main process does)


@pytest.fixture
def ray_cluster(ray_cluster_session: RayCluster, tmp_path_factory: pytest.TempPathFactory,
                worker_id: str) -> Iterator[RayCluster]:
    """The shared 2-node cluster, this test's alone while it runs."""
    with exclusive_lock(run_temp_root(tmp_path_factory, worker_id) / "ray-cluster" / "use.lock"):
        yield ray_cluster_session
