"""A pyannote diarization pipeline from the hub (HF_TOKEN) or a local copy, through whisperx."""

from __future__ import annotations

from typing import Any

import numpy as np

from whisperx_api.pipeline.diarization.turns import Diarization, SpeakerTurn
from whisperx_api.pipeline.progress import ProgressCallback


def load_pyannote(model: str, token: str | None, device: str) -> Any:
    from whisperx.diarize import DiarizationPipeline

    return DiarizationPipeline(model_name=model, token=token, device=device)


def diarize_pyannote(
    pipeline: Any, model: str, audio: np.ndarray, num_speakers: int | None, min_speakers: int | None,
    max_speakers: int | None, progress: ProgressCallback,
) -> Diarization:  # fmt: skip
    frame, embeddings = pipeline(
        audio, num_speakers=num_speakers, min_speakers=min_speakers, max_speakers=max_speakers,
        return_embeddings=True, progress_callback=lambda pct: progress("diarizing", pct / 100),
    )  # fmt: skip
    turns = [SpeakerTurn(round(float(r.start), 3), round(float(r.end), 3), str(r.speaker)) for r in frame.itertuples()]
    vectors = {k: [float(x) for x in v] for k, v in (embeddings or {}).items()}
    return Diarization(turns, vectors, "pyannote", model, model)
