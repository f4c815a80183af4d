"""The backends behind evud.gemini.backend.Backend, one module each, and the factory that picks one."""

from __future__ import annotations

from pathlib import Path

from google.genai import types

from evud.core.params import GeminiParams, ParamsError
from evud.gemini.backend import Backend


def make_backend(gemini: GeminiParams, clips_dir: Path) -> Backend:
    """The backend gemini.backend names."""
    types.GenerateContentResponse.model_validate({})  # build the SDK's models before any thread uses them
    if gemini.backend == "replay":
        from evud.gemini.backends.replay import ReplayBackend

        if not gemini.replay_file:
            raise ParamsError("gemini.backend=replay needs gemini.replay_file")
        return ReplayBackend(Path(gemini.replay_file))
    from evud.gemini.backends.vertex import VertexBackend  # imported lazily: the replay path needs no Google auth

    return VertexBackend(gemini, clips_dir)
