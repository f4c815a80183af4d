r"""Stage `verify`: check every QA pair generate produced before it trains a model.

    python -m stages.verify --manifest data/clips.jsonl --responses data/responses.jsonl --clips-dir data/clips \
        --prices conf/prices.yaml --out data/verdicts.jsonl --metrics metrics/verify.json \
        --plot plots/verdicts_per_category.json

The blind check asks a model the questions without the video (a judge request decides whether its answers agree
with the video answers); the grounding check (verify.grounded) asks whether the clip supports each answer. Check
answers go through the answer store like generate's: nothing is paid twice. Retryable failures make the stage exit 1
so the next `dvc repro` asks them again (EVUD_ALLOW_FAILED=1 accepts them). The work is evud.verify.verify.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evud.core.errors import run_stage
from evud.core.params import load_section, runtime_int
from evud.gemini.prices import load_prices
from evud.verify.verify import run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--responses", type=Path, required=True)
    parser.add_argument("--clips-dir", type=Path, required=True)
    parser.add_argument("--prices", type=Path, default=Path("conf/prices.yaml"), help="the price table")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--plot", type=Path, default=None, help="where to write the verdict plot's data")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    run_stage("verify", lambda: run(
        load_section("verify", args.params), load_section("gemini", args.params), load_section("prompt", args.params),
        args.manifest, args.responses, args.clips_dir, args.out, args.metrics, args.plot,
        runtime_int("EVUD_CONCURRENCY", 8), prices=load_prices(args.prices)),
        on_interrupt="check answers received are kept in the answer store; run again to ask only the rest")


if __name__ == "__main__":
    main()
