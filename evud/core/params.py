"""Typed views of params.yaml, one per section, so each stage reads exactly the sections dvc.yaml declares.

Runtime knobs that change no output (workers, concurrency, progress) are environment variables, read by
`runtime_int`, never params: changing them must not make DVC re-run a stage.

`python -m evud.core.params` rewrites params.yaml from conf/ exactly as `dvc exp run` does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evud.core.errors import UserError

PARAMS_FILE = Path("params.yaml")
CONF_DIR = Path("conf")


class _Section(BaseModel):
    # A typo in conf/ must fail loudly, not silently fall back to a default.
    model_config = ConfigDict(extra="forbid")


# Where windows come from (evud.clips.sources_of_windows): Ego4D NLQ (the EVUD recipe), Ego4D Moments, EPIC-KITCHENS-100
# action segments, or a windows file of the user's own (CSV or JSON Lines).
WindowSource = Literal["ego4d_nlq", "ego4d_moments", "epic_kitchens", "windows"]


class DataParams(_Section):
    source: WindowSource = "ego4d_nlq"
    root: str
    ego4d_json: str | None = None  # Ego4D's video metadata: NLQ needs it; Moments reads durations and s3_path from it
    nlq_json: str | None = None  # ego4d_nlq: nlq_train.json
    annotations: str | None = None  # the other sources: moments_train.json, EPIC_100_train.csv, or a windows file
    video_url: str | None = None
    window_rounding: Literal["evud", "exact"] = "evud"
    min_window_sec: float = 0.0
    max_window_sec: float | None = None
    limit: int | None = None
    video_uids: list[str] | None = None  # allow-list; null for every video
    s3_endpoint_url: str | None = None  # S3-compatible store; null: AWS_ENDPOINT_URL_S3 or AWS itself
    # Ego4D sources read from ego4d.json's s3_path (video_url null): which of Ego4D's files a window is cut from
    # (evud.clips.ego4d_videos); null: video_540ss when clip.height <= 540, else full_scale.
    ego4d_videos: Literal["video_540ss", "full_scale"] | None = None
    ego4d_manifest: str | None = None  # the video_540ss manifest.csv; null: where the Ego4D CLI finds it
    max_redacted_sec: float = Field(0.0, ge=0)  # a window overlapping more redacted footage than this is not cut

    @model_validator(mode="after")
    def _source_files(self) -> DataParams:
        needed = {"ego4d_nlq": ("ego4d_json", "nlq_json"), "ego4d_moments": ("annotations",),
                  "epic_kitchens": ("annotations", "video_url"), "windows": ("annotations",)}[self.source]
        missing = [key for key in needed if not getattr(self, key)]
        if missing:
            raise ValueError(f"source {self.source} needs {' and '.join(missing)}")
        if self.source == "ego4d_moments" and not (self.ego4d_json or self.video_url):
            raise ValueError("source ego4d_moments needs ego4d_json (durations and s3_path) or video_url")
        if self.source == "windows" and self.video_url:
            raise ValueError("source windows reads each video from the windows file's `video` column; set video_url "
                             "to null")
        return self


class ClipParams(_Section):
    # exact: the window's frames re-encoded (what loaders and Gemini read is the window); copy: remux, players only.
    # `reencode` is the older name of `exact`.
    mode: Literal["exact", "copy", "reencode"] = "exact"
    keep_audio: bool = True
    height: int = Field(384, ge=16)
    crf: int = Field(23, ge=0, le=51)
    preset: str = "superfast"
    keep_local: bool = True


class GcsParams(_Section):
    bucket: str | None = None
    prefix: str = "ego4d_vqa_gemini_videos"


class GeminiParams(_Section):
    # replay: bundled examples; vertex: Gemini on Vertex AI; openai: any OpenAI-compatible chat-completions server
    # (vLLM, SGLang) at base_url, its key from OPENAI_API_KEY (evud.gemini.backends.openai_compat).
    backend: Literal["replay", "vertex", "openai"]
    model: str
    mode: Literal["online", "batch"] = "online"
    base_url: str | None = None
    project: str | None = None
    location: str = "global"
    video_source: Literal["auto", "inline"] = "auto"
    batch_bucket: str | None = None
    batch_prefix: str = "evud-batch"
    max_cost_usd: float | None = None
    replay_file: str | None = None
    # Any field of google-genai's GenerateContentConfig (checked by the SDK's own model when generate starts,
    # evud.gemini.request.generation_config), e.g. max_output_tokens, thinking_config.thinking_level, media_resolution.
    generation: dict[str, Any] = Field(default_factory=dict)
    retry_truncated: bool = True  # ask an answer cut at MAX_TOKENS once more, with a larger output budget
    inline_limit_mb: float = 256  # largest clip sent as inline bytes (the model page's inline part limit)
    # Frames a second Gemini looks at (videoMetadata.fps; Vertex accepts (0, 24]); null: the model's default, 1.
    video_fps: float | None = None
    # openai backend only. How the clip goes to the server: video_url (the clip's bytes as a data:video/mp4 URL: vLLM
    # and SGLang serving a video model, e.g. Qwen2.5-VL) or frames (video_frames JPEG images sampled uniformly from the
    # window: any server of an image model). Both are in the request key.
    video_mode: Literal["video_url", "frames"] = "video_url"
    video_frames: int = Field(16, ge=1, le=256)
    # openai backend only: sampling params the server takes beyond OpenAI's (vLLM: repetition_penalty, min_p, ...),
    # sent as they are and held in the request key.
    extra_body: dict[str, Any] = Field(default_factory=dict)
    # Prices are not params: they live in conf/prices.yaml (a dep of generate), dated (evud.gemini.prices).


class PromptParams(_Section):
    name: str
    format: Literal["text", "json"] = "text"  # how postprocess reads the answers
    text: str
    # JSON schema of a structured answer (format: json); generate sends it as `response_json_schema`.
    response_schema: dict[str, Any] | None = None


PolicyAction = Literal["keep", "flag", "drop"]


def _default_verdict_policy() -> dict[str, PolicyAction]:
    return {"grounded": "keep", "blind_answerable": "flag", "unsupported": "drop", "unverified": "keep"}


class PostParams(_Section):
    seed: int = 42
    video_root: str = ""
    require_all_categories: bool = True
    min_pairs: int = Field(1, ge=1)
    dedupe_questions: bool = True
    gold_answers: str | None = None
    duration_bin_s: float = Field(2.0, gt=0)
    # What each of verify's verdicts does to a pair: keep, flag (kept, first in the review queue) or drop.
    verdicts: dict[Literal["grounded", "blind_answerable", "unsupported", "unverified"], PolicyAction] = Field(
        default_factory=_default_verdict_policy)

    @field_validator("verdicts")
    @classmethod
    def _every_verdict(cls, policy: dict[str, PolicyAction]) -> dict[str, PolicyAction]:
        missing = sorted(set(_default_verdict_policy()) - set(policy))
        if missing:
            raise ValueError(f"no action for {', '.join(missing)} (each verdict needs keep, flag or drop)")
        return policy


class VerifyParams(_Section):
    """What verify checks and with which model and prompts (conf/verify/)."""

    blind: bool = True  # the questions to a model without the video: which pairs it answers the same way
    grounded: bool = False  # the clip and its pairs to a model: does the video support each answer (costs ~generate)
    model: str | None = None  # the blind check's and the judge's model (null: gemini.model)
    ground_model: str | None = None  # the grounding check's model (null: gemini.model)
    # Each check's own model, backend and server, so that another family can check (e.g. Gemini generates, an open
    # model on vLLM judges). null: the blind and judge models are `model`; the backends and base_url are gemini's.
    blind_model: str | None = None
    judge_model: str | None = None
    blind_backend: Literal["replay", "vertex", "openai"] | None = None
    judge_backend: Literal["replay", "vertex", "openai"] | None = None
    ground_backend: Literal["replay", "vertex", "openai"] | None = None
    blind_base_url: str | None = None
    judge_base_url: str | None = None
    ground_base_url: str | None = None
    max_cost_usd: float | None = None  # refuse to start above this estimate (null: no limit)
    replay_file: str | None = None  # the replay backend's verify answers (hand-written for the sample)
    generation: dict[str, Any] = Field(default_factory=dict)  # GenerateContentConfig fields, as gemini.generation
    blind_prompt: str
    judge_prompt: str
    ground_prompt: str


class BrowseParams(_Section):
    frames: int = Field(8, ge=1, le=64)  # frames per strip, spread over the clip's window
    strip_height: int = Field(96, ge=16, le=720)  # pixels
    jpeg_quality: int = Field(75, ge=1, le=100)


class ExportParams(_Section):
    """What the Hugging Face export's dataset card says that the data and the other params do not (docs/export.md)."""

    license: str | None = None  # a Hub license id (cc-by-4.0, other, ...); null: the window source's license
    license_name: str | None = None  # license: other only: an id for it (the Hub shows it)
    license_link: str | None = None  # license: other only: a URL, or LICENSE.md inside the repository
    pretty_name: str | None = None  # the card's title; null: named after the source
    repo_id: str | None = None  # <user>/<name> the card's loading example names; null: a placeholder

    @model_validator(mode="after")
    def _other_license_named(self) -> ExportParams:
        # The Hub cannot tell a reader what "other" is without a name and a link.
        if self.license == "other" and not (self.license_name and self.license_link):
            raise ValueError("license: other needs license_name and license_link")
        return self


SECTIONS: dict[str, type[_Section]] = {
    "data": DataParams,
    "clip": ClipParams,
    "gcs": GcsParams,
    "gemini": GeminiParams,
    "prompt": PromptParams,
    "post": PostParams,
    "verify": VerifyParams,
    "browse": BrowseParams,
    "export": ExportParams,
}


class ParamsError(UserError):
    """A param value the stage cannot use; the message names the key, the value and what is allowed."""


def describe_errors(where: str, err: ValidationError) -> str:
    """`<where>.<key>=<value>: <what is allowed>` for each invalid key, e.g. `clip.mode='fast': Input should be ...`."""
    parts = []
    for problem in err.errors():
        key = ".".join([where, *(str(p) for p in problem["loc"])])
        value = "" if problem["type"] == "missing" else f"={problem['input']!r}"
        parts.append(f"{key}{value}: {problem['msg']}")
    return "; ".join(parts)


# Keys that left params.yaml, and where they went: an old params.yaml is named for what it is.
MOVED_KEYS = {("gemini", "pricing"): "conf/prices.yaml (dated prices, not params)"}


def load_section(name: str, params_file: Path = PARAMS_FILE) -> Any:
    """Load one typed section of params.yaml; a bad value stops the stage naming the key and what is allowed."""
    with open(params_file, encoding="utf-8") as f:
        params = yaml.safe_load(f) or {}
    if name not in params:
        raise ParamsError(f"{params_file} has no '{name}' section; regenerate it with `python -m evud.core.params`")
    for (section, key), moved_to in MOVED_KEYS.items():
        if section == name and key in (params[name] or {}):
            raise ParamsError(f"{params_file}: {section}.{key} moved to {moved_to}; regenerate params.yaml from conf/ "
                              "with `python -m evud.core.params`")
    try:
        return SECTIONS[name].model_validate(params[name])
    except ValidationError as err:
        raise ParamsError(f"{params_file}: {describe_errors(name, err)}") from None


def _runtime_number(env_name: str, default: Any, parse: Any, minimum: float, what: str) -> Any:
    raw = os.environ.get(env_name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ParamsError(f"{env_name}={raw!r} is not {what} of at least {minimum:g}")
    return value


def runtime_int(env_name: str, default: int) -> int:
    """An integer runtime knob (at least 1) from the environment; not a DVC param: it changes no output."""
    return _runtime_number(env_name, default, int, 1, "a whole number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(text)
    return value


def runtime_seconds(env_name: str, default: float, least: float = 0.0) -> float:
    """A finite number of seconds (at least `least`) from the environment, e.g. a timeout or a wait; not a DVC param."""
    return _runtime_number(env_name, default, _finite_float, least, "a number of seconds")


def runtime_float(env_name: str, default: float) -> float:
    """A non-negative number of seconds (or a rate) from the environment; not a DVC param."""
    return _runtime_number(env_name, default, float, 0, "a number")


def compose_params(output_file: Path = PARAMS_FILE, conf_dir: Path = CONF_DIR, overrides: list[str] | None = None) -> None:
    """Compose conf/ into a params file with DVC's own Hydra helper (what `dvc exp run` does)."""
    from dvc.utils.hydra import compose_and_dump

    compose_and_dump(str(output_file), str(conf_dir.resolve()), None, "config", "hydra_plugins", overrides or [])


if __name__ == "__main__":
    compose_params()
    print(f"wrote {PARAMS_FILE} from {CONF_DIR}/")
