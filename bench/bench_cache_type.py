"""Benchmark: DVC's cache type for the clips, `hardlink` against `reflink,copy`: time and disk of a prepare run.

    python -m bench.bench_cache_type [--clips 1000] [--size-kb 80]

The clip store, data/clips and DVC's cache: with `hardlink` they are three names of one file (an in-place edit of one
changes all three: prepare notices it and heals them); with `reflink,copy` DVC's cache holds its own copy where the
file system cannot clone (ext4 here cannot), so every clip is on disk twice. Two workloads, each in a fresh repository
per cache type: the bundled sample (`dvc repro prepare`, 7 clips), and N small clips of S KB linked from a store the
way prepare links them (a stage whose only work is writing and linking them, so DVC's hashing and caching dominate).
Figures: wall time of `dvc repro` (first run) and of `dvc checkout --force` after the clips were deleted, bytes of the
clips, disk used by store + workspace + cache (hard links counted once: one `du` over the three).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.repo import make_repo_copy, run

CACHE_TYPES = ("hardlink", "reflink,copy")

_MAKE_CLIPS = """
import os, random, sys
from pathlib import Path
from evud.clips.clip_store import link_file
count, size = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(7)
store, out = Path("store"), Path("clips")
for i in range(count):
    stored = store / f"{i:05d}.mp4"
    if not stored.exists():
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_bytes(rng.randbytes(size))
    link_file(stored, out / f"v{i % 50:02d}" / f"{i:05d}.mp4")
"""


def disk_kb(*paths: Path) -> int:
    """Disk used by these folders together, each hard-linked file counted once (du counts an inode once per call)."""
    existing = [str(p) for p in paths if p.exists()]
    lines = subprocess.run(["du", "-sck", *existing], capture_output=True, text=True, check=True).stdout.splitlines()
    return int(lines[-1].split()[0])


def timed(cmd: list[str], repo: Path) -> float:
    started = time.monotonic()
    run(cmd, repo)
    return time.monotonic() - started


def sample_repo(root: Path, cache_type: str) -> tuple[Path, list[Path]]:
    repo = make_repo_copy(root / "sample")
    run(["dvc", "config", "cache.type", cache_type], repo)
    return repo, [repo / ".evud/clips", repo / "data/clips", repo / ".dvc/cache"]


def many_clips_repo(root: Path, cache_type: str, clips: int, size: int) -> tuple[Path, list[Path]]:
    repo = root / "many"
    repo.mkdir()
    (repo / "make_clips.py").write_text(_MAKE_CLIPS)
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["dvc", "config", "cache.type", cache_type], repo)
    run(["dvc", "stage", "add", "-n", "cut", "-d", "make_clips.py", "-o", "clips",
         f"{sys.executable} make_clips.py {clips} {size}"], repo)
    return repo, [repo / "store", repo / "clips", repo / ".dvc/cache"]


def measure(repo: Path, folders: list[Path], stage: str, out: str) -> dict[str, float]:
    repro_s = timed(["dvc", "repro", stage], repo)
    clip_bytes = sum(p.stat().st_size for p in (repo / out).rglob("*") if p.is_file())
    used_kb = disk_kb(*folders)
    shutil.rmtree(repo / out)
    checkout_s = timed(["dvc", "checkout", "--force", stage], repo)
    return {"repro_s": round(repro_s, 2), "checkout_s": round(checkout_s, 2), "clip_mb": round(clip_bytes / 1e6, 2),
            "disk_mb": round(used_kb * 1024 / 1e6, 2), "disk_per_clip_byte": round(used_kb * 1024 / clip_bytes, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--size-kb", type=int, default=80)  # the sample's clips are 50-85 KB
    args = parser.parse_args()
    print(f"{'workload':<22}{'cache.type':<15}{'repro s':>9}{'checkout s':>12}{'clips MB':>10}{'disk MB':>10}"
          f"{'disk/clips':>12}")
    for cache_type in CACHE_TYPES:
        with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
            repo, folders = sample_repo(Path(tmp), cache_type)
            row = measure(repo, folders, "prepare", "data/clips")
            print(f"{'sample (7 clips)':<22}{cache_type:<15}{row['repro_s']:>9}{row['checkout_s']:>12}"
                  f"{row['clip_mb']:>10}{row['disk_mb']:>10}{row['disk_per_clip_byte']:>12}", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
            repo, folders = many_clips_repo(Path(tmp), cache_type, args.clips, args.size_kb * 1024)
            row = measure(repo, folders, "cut", "clips")
            print(f"{f'{args.clips} clips of {args.size_kb} KB':<22}{cache_type:<15}{row['repro_s']:>9}"
                  f"{row['checkout_s']:>12}{row['clip_mb']:>10}{row['disk_mb']:>10}{row['disk_per_clip_byte']:>12}",
                  flush=True)


if __name__ == "__main__":
    main()
