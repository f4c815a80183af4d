r"""Stage `browse`: a static dataset browser (data/browse/index.html) with frame strips, gold edits and run comparison.

    python -m stages.browse --manifest data/clips.jsonl --dataset data/ego4d_vqa_gemini.json \
        --rejects data/rejects.jsonl --responses data/responses.jsonl --verdicts data/verdicts.jsonl \
        --clips-dir data/clips --out data/browse

Open data/browse/index.html in a browser (file:// works; no server). Strips are cached in the local
store ($EVUD_STORE, else <repository>/.evud), so a re-run draws only new clips.
Workers: EVUD_WORKERS (default: CPU count); not a param, since it changes no output. The work is evud.browse.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from evud.browse.build import SiteInputs, run
from evud.core.errors import run_stage
from evud.core.params import load_section, runtime_int


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--rejects", type=Path, required=True)
    parser.add_argument("--responses", type=Path, required=True)
    parser.add_argument("--verdicts", type=Path, default=None, help="verify's verdicts (data/verdicts.jsonl)")
    parser.add_argument("--clips-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="the site's directory, e.g. data/browse")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    inputs = SiteInputs(args.manifest, args.dataset, args.rejects, args.responses, args.clips_dir, args.verdicts)

    def build() -> None:
        post = load_section("post", args.params)
        run(inputs, args.out, load_section("browse", args.params), post.gold_answers,
            runtime_int("EVUD_WORKERS", os.cpu_count() or 1), dict(post.verdicts))

    run_stage("browse", build,
              on_interrupt="strips made so far are kept in the store; run again")


if __name__ == "__main__":
    main()
