"""Build the static site: read the pipeline's files, make missing strips, write data.js, the page and its strips.

The site opens from file:// and from any static host: no server, no CDN, no request beyond its own files
(and the local clips, for the player, when they are beside it).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from evud.browse.site import ClipMedia, data_js, playable_clip_path, site_data
from evud.browse.strips import StripCache, StripJob, StripReport, StripSettings, is_sha256, make_strips
from evud.core.jsonl import read_jsonl
from evud.core.params import BrowseParams
from evud.core.records import ClipRecord, ClipStatus, GeminiResult, LlavaRecord, Reject
from evud.core.store import store_root, write_atomic
from evud.dataset.gold import load_gold_answers
from evud.dataset.postprocess import read_verdicts

ASSETS = ("index.html", "app.js", "style.css")
STRIPS_DIR = "strips"


@dataclass(frozen=True)
class SiteInputs:
    """The pipeline files the site is built from (paths relative to the repository root)."""

    manifest: Path
    dataset: Path
    rejects: Path
    responses: Path
    clips_dir: Path
    verdicts: Path | None = None  # verify's verdicts (None: the site shows none)


@dataclass
class SiteReport:
    clips: int
    strips: StripReport
    site_bytes: int


def strip_settings(params: BrowseParams) -> StripSettings:
    return StripSettings(frames=params.frames, height=params.strip_height, jpeg_quality=params.jpeg_quality)


def strip_jobs(manifest: list[ClipRecord], clips_dir: Path) -> list[StripJob]:
    """A job per cut clip with a usable hash: its local file if kept, else its uploaded copy."""
    jobs = []
    for clip in manifest:
        if clip.status is not ClipStatus.ok or not is_sha256(clip.sha256) or clip.duration is None:
            continue
        relative = playable_clip_path(clip)
        local = clips_dir / relative if relative else None
        source = str(local) if local is not None and local.is_file() else clip.clip_uri
        if source:
            jobs.append(StripJob(key=clip.key, sha256=clip.sha256, source=source, duration=clip.duration))
    return jobs


def clip_media(manifest: list[ClipRecord], clips_dir: Path, cache: StripCache,
               settings: StripSettings) -> dict[str, ClipMedia]:
    """Per clip key: the strip the cache holds for it and whether its local file can be played."""
    media = {}
    for clip in manifest:
        if clip.status is not ClipStatus.ok:
            continue
        strip = clip.sha256 if is_sha256(clip.sha256) and cache.has(clip.sha256, settings) else None
        relative = playable_clip_path(clip)
        media[clip.key] = ClipMedia(strip=strip, local=bool(relative and (clips_dir / relative).is_file()))
    return media


def read_responses(responses: Path) -> list[GeminiResult]:
    return [GeminiResult.model_validate(raw) for raw in read_jsonl(responses)]


def rejected_answers(results: list[GeminiResult], keys: set[str]) -> dict[str, str]:
    """Gemini's text for the clips with rejects: what the parser saw, to judge the reject."""
    return {result.key: result.text for result in results if result.key in keys and result.text}


def copy_strips(cache: StripCache, settings: StripSettings, shas: set[str], out_dir: Path) -> None:
    """The site's own copy of each strip it shows (strips/<sha256>.jpg); strips no longer shown are removed."""
    target = out_dir / STRIPS_DIR
    target.mkdir(parents=True, exist_ok=True)
    wanted = {f"{sha}.jpg" for sha in shas}
    for old in target.iterdir():
        if old.name not in wanted:
            old.unlink()
    for sha in sorted(shas):
        source, dest = cache.path(sha, settings), target / f"{sha}.jpg"
        if not dest.is_file() or dest.stat().st_size != source.stat().st_size:
            write_atomic(dest, source.read_bytes())


def write_assets(out_dir: Path) -> None:
    """The page itself: package data files, copied as they are."""
    assets = resources.files("evud.browse") / "assets"
    for name in ASSETS:
        write_atomic(out_dir / name, (assets / name).read_bytes())


def site_size(out_dir: Path) -> int:
    return sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())


def build_site(inputs: SiteInputs, out_dir: Path, params: BrowseParams, gold_answers: str | None, store: Path,
               workers: int = 1, verdict_policy: dict[str, str] | None = None) -> SiteReport:
    """Read the pipeline's files, make the strips the store lacks, and write the site into out_dir."""
    manifest = [ClipRecord.model_validate(r) for r in read_jsonl(inputs.manifest)]
    with open(inputs.dataset, encoding="utf-8") as f:
        dataset = [LlavaRecord.model_validate(r) for r in json.load(f)]
    rejects = [Reject.model_validate(r) for r in read_jsonl(inputs.rejects)]
    settings = strip_settings(params)
    cache = StripCache(store / STRIPS_DIR)
    report = make_strips(strip_jobs(manifest, inputs.clips_dir), cache, settings, workers)
    for error in report.failed.values():
        print(f"browse: no strip: {error}", file=sys.stderr)
    media = clip_media(manifest, inputs.clips_dir, cache, settings)
    results = read_responses(inputs.responses)
    answers = rejected_answers(results, {r.key for r in rejects})
    clips_href = Path(os.path.relpath(inputs.clips_dir, out_dir)).as_posix().rstrip("/") + "/"
    verdicts = read_verdicts(inputs.verdicts) if inputs.verdicts is not None else None
    data = site_data(manifest, dataset, rejects, answers, load_gold_answers(gold_answers), media, clips_href,
                     {"frames": settings.frames, "height": settings.height}, verdicts, verdict_policy,
                     {result.key: result.request_key for result in results})
    out_dir.mkdir(parents=True, exist_ok=True)
    copy_strips(cache, settings, {m.strip for m in media.values() if m.strip}, out_dir)
    write_assets(out_dir)
    write_atomic(out_dir / "data.js", data_js(data).encode("utf-8"))
    return SiteReport(clips=len(data["clips"]), strips=report, site_bytes=site_size(out_dir))


def run(inputs: SiteInputs, out_dir: Path, params: BrowseParams, gold_answers: str | None, workers: int,
        verdict_policy: dict[str, str] | None = None) -> SiteReport:
    """Build the site with the strip cache of the local store, and say what was done."""
    report = build_site(inputs, out_dir, params, gold_answers, store_root(), workers, verdict_policy)
    print(f"browse: {report.clips} clips, {report.strips.made} strips made, {report.strips.reused} reused, "
          f"{len(report.strips.failed)} failed; {report.site_bytes / 1e6:.1f} MB -> {out_dir / 'index.html'}",
          file=sys.stderr)
    return report
