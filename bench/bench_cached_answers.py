"""Benchmark: finding answers already paid for in the responses.jsonl versions DVC's cache holds.

    python -m bench.bench_cached_answers                 # 14,000 keys, 4 experiments, 4 run-cache entries
    python -m bench.bench_cached_answers --keys 2000     # a quick look

A repository made here (git + DVC, no stage run): the workspace's dvc.lock, HEAD's and each experiment ref's
(refs/exps/...) and each run-cache entry name a version of data/responses.jsonl in DVC's cache, each version the
answers of another model (its own request keys). Scenarios, each timed cold (a new process's first lookup):
  1. every wanted key is in the workspace's locked version (a re-run after DVC deleted the out);
  2. every wanted key is in the oldest run-cache entry (an experiment removed long ago);
  3. a run with new request keys: the wanted keys of scenario 1 and as many again that no version holds;
  4. scenario 3 again in the same process (a second round of asking: the re-asks, verify's judge round).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.dvc_versions import key_of, make_repository


LOOKUP = """
import sys, time
from pathlib import Path
from evud.gemini.asking import cached_responses, reusable
wanted = set(Path(sys.argv[1]).read_text().split())
reader = cached_responses(Path("data/responses.jsonl"))
for attempt in range(int(sys.argv[2])):
    started = time.perf_counter()
    found = sum(1 for _ in reader(set(wanted), reusable))
    print(found, round(time.perf_counter() - started, 3))
"""


def lookup(repo: Path, wanted: set[str], rounds: int = 1) -> list[tuple[int, float]]:
    """Found answers and seconds of each lookup, in a new process (cold: what a stage's run pays)."""
    keys_file = repo / "wanted.txt"
    keys_file.write_text("\n".join(sorted(wanted)))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "EVUD_STORE": str(repo / ".evud")}
    out = subprocess.run(["python", "-c", LOOKUP, str(keys_file), str(rounds)], cwd=repo, env=env, check=True,
                         capture_output=True, text=True).stdout
    return [(int(found), float(seconds)) for found, seconds in (line.split() for line in out.splitlines())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=14_000)
    parser.add_argument("--experiments", type=int, default=4)
    parser.add_argument("--run-cache", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cached-") as tmp:
        repo = Path(tmp) / "repo"
        started = time.perf_counter()
        models = make_repository(repo, args.keys, args.experiments, args.run_cache)
        print(f"{len(models)} versions of {args.keys:,} answers made in {time.perf_counter() - started:.1f} s")
        newest = {key_of(models[0], i) for i in range(args.keys)}
        oldest = {key_of(models[-1], i) for i in range(args.keys)}
        new = newest | {key_of("never-asked", i) for i in range(args.keys)}
        for name, wanted, rounds in [("1. all in the workspace's version", newest, 1),
                                     ("2. all in the oldest run-cache entry", oldest, 1),
                                     ("3. new keys beside the workspace's", new, 1),
                                     ("4. new keys, first and second lookup of a run", new, 2)]:
            results = lookup(repo, wanted, rounds)
            print(f"{name}: " + "; ".join(f"{found:,} found in {seconds:.3f} s" for found, seconds in results))
        print("3 again (a later run):", "; ".join(f"{f:,} found in {s:.3f} s" for f, s in lookup(repo, new)))


if __name__ == "__main__":
    main()
