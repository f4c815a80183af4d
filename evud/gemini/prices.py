"""The price table (conf/prices.yaml): per model, dated list prices and video token rates.

A price holds from a day on, until the next row of the model starts (or its own `until`), so an estimate made on a
given date uses the price in force that day, and a price change announced ahead (a launch price ending, a new
price from the first of a month) is never silently stale. Nothing here knows a model name.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from evud.core.errors import UserError


class PriceTableError(UserError):
    """The price table cannot be read or holds an impossible row; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PriceRow(_Strict):
    """List prices (USD per 1M tokens) from one day on."""

    starts: date = Field(alias="from")
    until: date | None = None  # the last day it holds, when known in advance
    input_per_1m: float = Field(ge=0)  # text, image and video frames
    audio_input_per_1m: float | None = Field(None, ge=0)  # the audio track, where priced apart (null: as input)
    output_per_1m: float = Field(ge=0)  # the answer and the thinking tokens (billed as output)


class ModelRates(_Strict):
    """How a model counts and prices tokens, with its dated prices."""

    batch_discount: float = Field(0.5, ge=0, lt=1)  # batch prediction costs (1 - discount) of the online price
    frame_tokens: dict[str, float]  # tokens per video frame by media resolution; `default` when it is not set
    audio_tokens_per_s: float = Field(32.0, ge=0)
    expected_output_tokens: int = Field(500, ge=0)  # answer + thinking, for the estimate before a run
    # A server that samples a fixed number of frames from any video (vLLM: 32 unless --media-io-kwargs says
    # otherwise); null: one frame a second, as Gemini does (gemini.video_fps).
    frames_per_video: int | None = Field(None, ge=1)
    prices: list[PriceRow] = Field(min_length=1)

    @model_validator(mode="after")
    def _rows_in_date_order(self) -> ModelRates:
        days = [row.starts for row in self.prices]
        if days != sorted(set(days)):
            raise ValueError("prices must be in date order, one row per `from` day")
        return self


class ModelPrice(_Strict):
    """One model's price in force on one day, with its token rates: what a cost is computed from."""

    input_per_1m: float
    audio_input_per_1m: float | None = None
    output_per_1m: float
    batch_discount: float = 0.5
    frame_tokens: dict[str, float]
    audio_tokens_per_s: float = 32.0
    expected_output_tokens: int = 500
    frames_per_video: int | None = None


class PriceTable(_Strict):
    models: dict[str, ModelRates] = Field(default_factory=dict)
    source: str = Field("the price table", exclude=True)  # the file it was read from, for messages

    def price_on(self, model: str, day: date) -> ModelPrice | None:
        """The price of `model` in force on `day` (UTC), or None when the table has none for that day."""
        rates = self.models.get(model)
        if rates is None:
            return None
        rows = rates.prices
        for row, following in zip(rows, [*rows[1:], None]):
            ends_before = following.starts if following is not None else None
            if row.starts <= day and (ends_before is None or day < ends_before) and (row.until is None or day <= row.until):
                return ModelPrice(input_per_1m=row.input_per_1m, audio_input_per_1m=row.audio_input_per_1m,
                                  output_per_1m=row.output_per_1m, batch_discount=rates.batch_discount,
                                  frame_tokens=rates.frame_tokens, audio_tokens_per_s=rates.audio_tokens_per_s,
                                  expected_output_tokens=rates.expected_output_tokens,
                                  frames_per_video=rates.frames_per_video)
        return None


def load_prices(path: Path) -> PriceTable:
    """The price table; a missing file or a bad row stops the stage naming the file and the key."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise PriceTableError(f"cannot read the price table {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise PriceTableError(f"{path} is not valid YAML: {err}") from None
    try:
        return PriceTable.model_validate({**data, "source": str(path)})
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise PriceTableError(f"{path}: {problems}") from None


def today_utc() -> date:
    return datetime.now(timezone.utc).date()
