r"""Stage `generate`: ask Gemini about every `ok` clip of the manifest, paying once per answer.

    python -m stages.generate --manifest data/clips.jsonl --clips-dir data/clips --prices conf/prices.yaml \
        --out data/responses.jsonl --metrics metrics/generate.json

Answers already paid for (the answer store, the responses dvc.lock recorded) are reused; only the rest is
asked, each answer stored the moment it arrives. Retryable failures make the stage exit 1 so that the next
`dvc repro` asks them again (EVUD_ALLOW_FAILED=1: build the dataset from what succeeded). Runtime knobs are
environment variables (EVUD_CONCURRENCY, EVUD_MAX_RPM, EVUD_REQUEST_TIMEOUT_S, ...): they change no answer.
The work is evud.gemini.generate.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evud.core.errors import run_stage
from evud.core.params import load_section, runtime_int
from evud.gemini.generate import run
from evud.gemini.prices import load_prices


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--clips-dir", type=Path, required=True)
    parser.add_argument("--prices", type=Path, default=Path("conf/prices.yaml"), help="the price table")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    run_stage("generate", lambda: run(
        load_section("gemini", args.params), load_section("prompt", args.params), args.manifest, args.clips_dir,
        args.out, args.metrics, runtime_int("EVUD_CONCURRENCY", 8), prices=load_prices(args.prices)),
        on_interrupt="answers received are kept in the answer store; run again to ask only the rest")


if __name__ == "__main__":
    main()
