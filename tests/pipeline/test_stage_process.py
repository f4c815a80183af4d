"""The helper that finds a stage's process must hand back the interpreter running it: on a machine where `python`
is a shim script (pyenv), the shim and its short-lived subshells carry the stage's command line too, and a test that
watched one of them saw it vanish (CI: psutil.NoSuchProcess in the kill -9 of prepare test)."""

from __future__ import annotations

import subprocess
import sys

import psutil

from tests.support.pipeline import stage_process


def test_stage_process_is_the_interpreter_not_a_shim_on_its_way_to_it():
    # A shim like pyenv's: a shell whose command line names the module, forking subshells before it execs Python.
    shim = ("for i in 1 2 3 4 5 6 7 8 9 10; do x=$(sleep 0.1; echo $i); done; "
            f"exec {sys.executable} -c 'import time; time.sleep(30)' -m evud_probe_module")
    runner = subprocess.Popen(["bash", "-c", f"bash -c \"{shim}\"; true"], start_new_session=True)
    try:
        found = stage_process(runner, "evud_probe_module")
        assert "python" in found.name(), found.name()
    finally:
        for child in psutil.Process(runner.pid).children(recursive=True):
            child.kill()
        runner.kill()
        runner.wait()
