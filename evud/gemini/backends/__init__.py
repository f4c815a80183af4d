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
    if gemini.backend == "openai":
        from evud.gemini.backends.openai_compat import OpenAIBackend  # lazily: only this backend needs the client

        return OpenAIBackend(gemini, clips_dir)
    from evud.gemini.backends.vertex import VertexBackend  # imported lazily: the replay path needs no Google auth

    return VertexBackend(gemini, clips_dir)


def stage_backend(gemini: GeminiParams, clips_dir: Path, given: Backend | None = None) -> Backend:
    """The backend a stage asks (`given`, as tests pass one, else make_backend's), refused when gemini.mode=batch
    asks for batch jobs it cannot run."""
    backend = given or make_backend(gemini, clips_dir)
    if gemini.mode == "batch" and not backend.supports_batch:
        raise ParamsError(f"gemini.mode=batch needs a backend that runs batch jobs; {backend.name} does not "
                          "(use gemini.backend=vertex)")
    return backend
