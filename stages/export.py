r"""Stage `export`: the dataset as a Hugging Face video dataset folder (clips, metadata.jsonl, a dataset card).

    python -m stages.export --dataset data/ego4d_vqa_gemini.json --manifest data/clips.jsonl \
        --clips-dir data/clips --out data/hf

`datasets.load_dataset("data/hf", split="train")` reads it; `hf upload <user>/<name> data/hf --repo-type dataset`
shares it (docs/export.md). Clips are hard links to data/clips, not copies; with
clip.keep_local=false the rows hold their gs:// URIs instead. The work is evud.hub.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evud.core.errors import run_stage
from evud.core.params import load_section
from evud.hub.card import CardFacts
from evud.hub.export import ExportInputs, run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="the LLaVA JSON (data/ego4d_vqa_gemini.json)")
    parser.add_argument("--manifest", type=Path, required=True, help="prepare's manifest (data/clips.jsonl)")
    parser.add_argument("--clips-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="the export folder, e.g. data/hf")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    inputs = ExportInputs(args.dataset, args.manifest, args.clips_dir)

    def export() -> None:
        # Only the keys dvc.yaml declares for this stage: data.source, gemini.model, prompt.name, export.
        facts = CardFacts(source=load_section("data", args.params).source,
                          model=load_section("gemini", args.params).model,
                          prompt_name=load_section("prompt", args.params).name,
                          export=load_section("export", args.params))
        run(inputs, args.out, facts)

    run_stage("export", export, on_interrupt="run again: the export is written afresh")


if __name__ == "__main__":
    main()
