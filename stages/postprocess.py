r"""Stage `postprocess`: parse Gemini's answers into LLaVA instruction-tuning records (EVUD layout).

    python -m stages.postprocess --manifest data/clips.jsonl --responses data/responses.jsonl \
        --verdicts data/verdicts.jsonl --out data/ego4d_vqa_gemini.json --rejects data/rejects.jsonl \
        --metrics metrics/postprocess.json --plots-dir plots

Nothing here calls Gemini: changing the parser, the policy (`post.*`, verify's verdicts included) or the gold
answers re-parses the stored answers for free. The work is evud.dataset.postprocess.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evud.core.errors import run_stage
from evud.core.params import load_section
from evud.dataset.postprocess import run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--responses", type=Path, required=True)
    parser.add_argument("--verdicts", type=Path, default=None, help="verify's verdicts (data/verdicts.jsonl)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rejects", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--plots-dir", type=Path, default=None, help="where to write the plot data files")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    run_stage("postprocess", lambda: run(
        load_section("post", args.params), load_section("prompt", args.params), args.manifest, args.responses,
        args.out, args.rejects, args.metrics, args.plots_dir, args.verdicts), on_interrupt="nothing was written; run again")


if __name__ == "__main__":
    main()
