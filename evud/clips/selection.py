"""Which windows to cut: the reader of the source data.source names (Ego4D NLQ, Ego4D Moments, EPIC-KITCHENS-100, or
a windows file), each giving plans and `skipped` records through the same checks (evud.clips.ego4d.plan_queries)."""

from __future__ import annotations

from collections.abc import Callable

from evud.clips.ego4d import ClipPlan, plan_nlq
from evud.clips.epic_kitchens import plan_epic_kitchens
from evud.clips.moments import plan_moments
from evud.clips.windows import plan_windows_file
from evud.core.params import DataParams
from evud.core.records import ClipRecord

PLANNERS: dict[str, Callable[[DataParams], tuple[list[ClipPlan], list[ClipRecord]]]] = {
    "ego4d_nlq": plan_nlq,
    "ego4d_moments": plan_moments,
    "epic_kitchens": plan_epic_kitchens,
    "windows": plan_windows_file,
}


def plan_clips(params: DataParams) -> tuple[list[ClipPlan], list[ClipRecord]]:
    """All selected windows of the source as plans, plus a `skipped` record for each that cannot be cut."""
    return PLANNERS[params.source](params)
