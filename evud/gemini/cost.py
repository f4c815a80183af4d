"""What a run will cost before it starts (from seconds of video and the price table), and what it did.

Prices live in the price table (conf/prices.yaml, evud.gemini.prices), keyed by model and dated: the estimate uses
the price in force on the run's date, an answer the price in force on the day it was received. Nothing here knows a
model name.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from evud.core.errors import UserError
from evud.core.params import GeminiParams
from evud.core.records import AnswerFields, Usage
from evud.gemini.backend import GeminiRequest
from evud.gemini.prices import ModelPrice, PriceTable

PROMPT_CHARS_PER_TOKEN = 4  # rough rule for English text; the prompt is a small part of a video request


class CostLimitExceeded(UserError):
    """The estimated cost of the calls to make is above gemini.max_cost_usd; nothing was called."""


class MissingPrice(UserError):
    """gemini.max_cost_usd is set but the price table has no price for the model today, so it cannot be checked."""


def usd(amount: float) -> str:
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.4f}"


@dataclass(frozen=True)
class CostEstimate:
    clips: int
    video_seconds: float
    input_tokens: int
    output_tokens: int
    cost_usd: float | None  # None when the price table has no row for the model

    def __add__(self, other: CostEstimate) -> CostEstimate:
        cost = None if self.cost_usd is None or other.cost_usd is None else self.cost_usd + other.cost_usd
        return CostEstimate(self.clips + other.clips, self.video_seconds + other.video_seconds,
                            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens, cost)

    def describe(self, what: str = "clip(s)") -> str:
        cost = usd(self.cost_usd) if self.cost_usd is not None else "unknown (no price for this model today in the price table)"
        return (f"{self.clips} {what} to call, {self.video_seconds:,.0f} s of video, "
                f"~{self.input_tokens:,} input + ~{self.output_tokens:,} output tokens, estimated cost {cost}")


def clip_seconds(request: GeminiRequest) -> float:
    """Seconds of video Gemini looks at: the window (offsets trim a padded file), else the whole file; none for a
    text-only request."""
    if not request.video:
        return 0.0
    clip = request.clip
    if clip.window_start is not None and clip.window_end is not None:
        return max(clip.window_end - clip.window_start, 0.0)
    if clip.file_start is not None and clip.file_end is not None:
        return max(clip.file_end - clip.file_start, 0.0)
    return clip.duration or 0.0


def fixed_frames(request: GeminiRequest, price: ModelPrice) -> int | None:
    """Frames the model sees of this clip when their number does not follow its length: the images sent (frames mode
    of the openai backend) or a server's fixed count per video; None: one a second (gemini.video_fps)."""
    if not request.video:
        return None
    sent = request.video_input or {}
    return sent["frames"] if sent.get("mode") == "frames" else price.frames_per_video


def frame_tokens(price: ModelPrice, media_resolution: str | None) -> float:
    """Tokens per video frame at this media resolution (Gemini samples one frame a second)."""
    rates = price.frame_tokens
    return rates.get(media_resolution or "default", rates.get("default", 0.0))


def tokens_cost(price: ModelPrice, input_tokens: int, audio_tokens: int, output_tokens: int, batch: bool) -> float:
    """USD for these tokens: audio at its own price where the model has one, thinking counted as output."""
    audio_price = price.audio_input_per_1m if price.audio_input_per_1m is not None else price.input_per_1m
    cost = ((input_tokens - audio_tokens) * price.input_per_1m + audio_tokens * audio_price
            + output_tokens * price.output_per_1m) / 1e6
    return cost * (1 - price.batch_discount) if batch else cost


def estimate_cost(requests: list[GeminiRequest], gemini: GeminiParams, price: ModelPrice | None,
                  output_tokens: int | None = None) -> CostEstimate:
    """What asking these requests should cost at `price` (the model's price in force today; None: unknown);
    `output_tokens` per request, else the price table's expected figure (a generate answer's)."""
    seconds = sum(clip_seconds(r) for r in requests)
    prompt_tokens = sum(math.ceil(len(r.prompt_text) / PROMPT_CHARS_PER_TOKEN) for r in requests)
    if price is None:
        return CostEstimate(len(requests), seconds, prompt_tokens, 0, None)
    resolution = gemini.generation.get("media_resolution")
    audio_tokens = math.ceil(seconds * price.audio_tokens_per_s)
    counted = [(r, fixed_frames(r, price)) for r in requests]
    per_second = sum(clip_seconds(r) for r, fixed in counted if fixed is None)
    # Gemini samples 1 frame a second unless video_fps says otherwise; an open model's server a fixed number
    frames = per_second * (gemini.video_fps or 1.0) + sum(fixed or 0 for _, fixed in counted)
    input_tokens = prompt_tokens + math.ceil(frames * frame_tokens(price, resolution)) + audio_tokens
    output_tokens = len(requests) * (price.expected_output_tokens if output_tokens is None else output_tokens)
    return CostEstimate(len(requests), seconds, input_tokens, output_tokens,
                        tokens_cost(price, input_tokens, audio_tokens, output_tokens, gemini.mode == "batch"))


def check_budget(estimate: CostEstimate, gemini: GeminiParams, prices_file: str, day: date) -> None:
    """Refuse to start a generate run whose estimate exceeds gemini.max_cost_usd."""
    refuse_above(estimate, gemini.max_cost_usd, "gemini.max_cost_usd", "generate", gemini.model, prices_file, day,
                 "call fewer clips (-S data.limit=...), or use gemini.mode=batch (discounted)")


def refuse_above(estimate: CostEstimate, limit: float | None, limit_name: str, stage: str, model: str,
                 prices_file: str, day: date, fewer: str, what: str = "clip(s)") -> None:
    """Refuse to start when the estimate exceeds `limit` (the param `limit_name`); `model` is the one without a
    price when the estimate has no cost; `fewer` says how to ask for less."""
    if limit is None or not estimate.clips:
        return
    if estimate.cost_usd is None:
        raise MissingPrice(f"{limit_name}={limit} is set but {prices_file} has no price for model {model!r} on "
                           f"{day.isoformat()}: add a row for it there (or set {limit_name.split('.')[-1]}=null)")
    if estimate.cost_usd > limit:
        raise CostLimitExceeded(
            f"{stage}: refusing to start: {estimate.describe(what)}, above {limit_name}={usd(limit)}. "
            f"Raise the limit (-S {limit_name}=...), {fewer}")


def answers_cost(answers: Iterable[AnswerFields], prices: PriceTable, batch: bool, today: date) -> float | None:
    """Cost of answers of any models, each model at its own prices (usage_cost); None when one has no price."""
    by_model: dict[str, list[AnswerFields]] = defaultdict(list)
    for entry in answers:
        by_model[entry.model].append(entry)
    total = 0.0
    for model, entries in sorted(by_model.items()):
        part = usage_cost([(e.usage, e.answered_at) for e in entries], model, prices, batch, today)
        if part is None:
            return None
        total += part
    return round(total, 6)


def usage_cost(answers: Iterable[tuple[Usage, datetime | None]], model: str, prices: PriceTable, batch: bool,
               today: date) -> float | None:
    """Cost of answers received, from the tokens Vertex reported, each at the price in force on the day it was
    received (today when that is not recorded); None when a day has no price for the model."""
    by_day: dict[date, list[Usage]] = defaultdict(list)
    for usage, received in answers:
        by_day[received.date() if received is not None else today].append(usage)
    total = 0.0
    for day, usages in by_day.items():
        price = prices.price_on(model, day)
        if price is None:
            return None
        # Thinking tokens are billed as output: count everything beyond the prompt when the total is known.
        output = sum(max(u.total_tokens - u.prompt_tokens, u.output_tokens + u.thoughts_tokens) for u in usages)
        total += tokens_cost(price, sum(u.prompt_tokens for u in usages), sum(u.prompt_audio_tokens for u in usages),
                             output, batch)
    return round(total, 6)
