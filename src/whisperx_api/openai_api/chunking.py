"""OpenAI's `chunking_strategy` as this service's voice activity detection.

Whisper always hears the audio in windows cut at pauses that the VAD finds (`vad_*` options of
the async API); OpenAI's strategies set that VAD:
- "auto" (or nothing): the service's VAD as configured;
- {"type": "server_vad", "threshold", "prefix_padding_ms", "silence_duration_ms"}: `threshold`
  is the speech probability that starts a region (`vad_onset`; `vad_offset` keeps its default
  ratio to it), `prefix_padding_ms` the silence kept before each region, `silence_duration_ms`
  the shortest pause that ends one. Anything else is a 400 naming `chunking_strategy`.

The SDK sends an object as bracketed form fields (`chunking_strategy[type]=server_vad`); a JSON
object in `chunking_strategy` itself (what a curl user would write) works too.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import msgspec

from whisperx_api.errors import ApiError
from whisperx_api.pipeline.options import VadOptions

PARAM = "chunking_strategy"
OFFSET_RATIO = VadOptions().vad_offset / VadOptions().vad_onset


class ServerVad(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """OpenAI's server_vad strategy, with OpenAI's defaults."""

    type: Literal["server_vad"]
    threshold: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.5
    prefix_padding_ms: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 300
    silence_duration_ms: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 200


def _invalid(message: str) -> ApiError:
    return ApiError(400, f"chunking_strategy: {message}", "invalid_value", PARAM)


def chunking_strategy(whole: str | None, parts: dict[str, str]) -> ServerVad | None:
    """The strategy a request asks for: `whole` is the chunking_strategy field, `parts` its
    bracketed fields (`type`, `threshold`, ...) by name. None: the configured VAD ("auto")."""
    if whole is not None and parts:
        raise _invalid("give it either as one field or as chunking_strategy[...] fields, not both")
    if whole is None and not parts:
        return None
    if whole is not None:
        text = whole.strip()
        if text == "auto":
            return None
        if not text.startswith("{"):
            raise _invalid(f"expected 'auto' or a server_vad object, got {text[:40]!r}")
        try:
            return msgspec.json.decode(text, type=ServerVad)
        except msgspec.DecodeError as exc:
            raise _invalid(str(exc)) from None
    try:
        return msgspec.convert(parts, ServerVad, strict=False)
    except msgspec.ValidationError as exc:
        raise _invalid(str(exc)) from None


def with_chunking(vad: VadOptions, strategy: ServerVad | None) -> VadOptions:
    if strategy is None:
        return vad
    return dataclasses.replace(
        vad,
        vad_onset=strategy.threshold,
        vad_offset=round(strategy.threshold * OFFSET_RATIO, 4),
        speech_pad_s=strategy.prefix_padding_ms / 1000,
        min_silence_s=strategy.silence_duration_ms / 1000,
    )
