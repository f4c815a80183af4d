"""Which windows to cut: the reader of the source data.source names (Ego4D NLQ, Ego4D Moments, EPIC-KITCHENS-100, or
a windows file), each giving plans and `skipped` records through the same checks (evud.clips.ego4d.plan_queries).
Readers of sources without durations (EPIC-KITCHENS, a windows file) look their videos up through the run's
SourceLookup, which the cut uses after them: one lookup per video."""

from __future__ import annotations

from collections.abc import Callable

from evud.clips.ego4d import ClipPlan, MetadataError, plan_nlq
from evud.clips.epic_kitchens import plan_epic_kitchens
from evud.clips.moments import plan_moments
from evud.clips.sources import SourceLookup
from evud.clips.windows import plan_windows_file
from evud.core.params import DataParams
from evud.core.records import ClipRecord

PLANNERS: dict[str, Callable[[DataParams, SourceLookup], tuple[list[ClipPlan], list[ClipRecord]]]] = {
    "ego4d_nlq": lambda params, _: plan_nlq(params),  # ego4d.json gives every duration: no video is read
    "ego4d_moments": plan_moments,
    "epic_kitchens": plan_epic_kitchens,
    "windows": plan_windows_file,
}


def plan_clips(params: DataParams, sources: SourceLookup | None = None) -> tuple[list[ClipPlan], list[ClipRecord]]:
    """All selected windows of the source as plans, plus a `skipped` record for each that cannot be cut.

    A source without a single window (a header and no row, the wrong file, an allow-list matching nothing) stops here:
    an empty manifest would pass for a finished run."""
    plans, records = PLANNERS[params.source](params, sources or SourceLookup(params.s3_endpoint_url))
    if not plans and not records:
        raise MetadataError(nothing_selected(params))
    return plans, records


def nothing_selected(params: DataParams) -> str:
    listing = params.nlq_json if params.source == "ego4d_nlq" else params.annotations
    if params.video_uids is not None:
        return (f"{listing}: no window of data.video_uids ({len(params.video_uids)} video(s)) in it "
                f"(data.source={params.source}): check the allow-list and the file")
    return f"{listing}: no window in it (data.source={params.source}): is it the right file?"
