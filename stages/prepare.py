r"""Stage `prepare`: select the source's windows (data.source), cut each into an mp4 clip, upload it, write the
manifest.

    python -m stages.prepare --clips-dir data/clips --manifest data/clips.jsonl --metrics metrics/prepare.json

Clips are cut into the clip store (outside every DVC out) and linked into the clips directory: a clip
already cut is never cut again, and a kill loses only the clips in flight. Retryable failures make the stage
exit 1 so that the next `dvc repro` cuts them again (EVUD_ALLOW_FAILED=1: carry on without them).
Workers: EVUD_WORKERS (default: CPU count); they die with the stage. With RAY_ADDRESS naming a running Ray cluster
the windows are cut there as Ray tasks instead (evud.clips.engines; the clip store, EVUD_STORE, must be a path every
node mounts). The work is evud.clips.prepare.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from evud.clips.prepare import run
from evud.core.errors import run_stage
from evud.core.params import load_section, runtime_int


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips-dir", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    run_stage("prepare", lambda: run(
        load_section("data", args.params), load_section("clip", args.params), load_section("gcs", args.params),
        args.clips_dir, args.manifest, args.metrics, runtime_int("EVUD_WORKERS", os.cpu_count() or 1)),
        on_interrupt="every clip finished so far is kept in the clip store; run again to cut only the rest")


if __name__ == "__main__":
    main()
