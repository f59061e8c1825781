"""Which speaker encoder makes the vectors: decided from settings alone, without importing torch,
so the web layer can name it without loading the pipeline."""

from __future__ import annotations

from pathlib import Path

EMBEDDED_MODEL = "resemblyzer-ge2e-256"


def pyannote_configured(hf_token: str | None, pipeline: str) -> bool:
    """A token to fetch the gated pipeline with, or a local copy of it."""
    return bool(hf_token) or Path(pipeline).exists()


def speaker_encoder_model(backend: str, hf_token: str | None, pipeline: str) -> str:
    """The id of the encoder that diarization with `backend` uses."""
    if backend == "pyannote" or (backend == "auto" and pyannote_configured(hf_token, pipeline)):
        return pipeline
    return EMBEDDED_MODEL
