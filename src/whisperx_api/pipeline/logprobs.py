"""Log-probabilities of a transcript's tokens under the Whisper decoder (OpenAI's include[]=logprobs).

CTranslate2's Whisper.align runs the decoder over the transcript's own tokens, teacher-forced on
the audio window each segment came from (the word-timing windows), and gives the probability it
assigns to each token: the model's own number for each chosen token, as OpenAI reports it. It is
computed after decoding (the beam search keeps only whole-sequence scores), without the previous
window's text as prompt.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

from faster_whisper.tokenizer import Tokenizer
from whisperx.asr import WhisperModel

from whisperx_api.pipeline.align import alignment_calls, alignment_windows
from whisperx_api.pipeline.audio import SAMPLE_RATE

FLOOR = 1e-30  # log(0) is not a number JSON can carry


@cache
def _byte_of() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet (which Whisper's tokenizer uses) back to bytes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes, strict=True)}


def token_bytes(model: WhisperModel, token: int) -> bytes:
    piece = model.hf_tokenizer.id_to_token(token) or ""
    return bytes(_byte_of()[char] for char in piece if char in _byte_of())


def token_logprobs(
    model: WhisperModel, audio: Any, segments: list[dict[str, Any]], language: str
) -> list[dict[str, Any]]:
    """`[{token, bytes, logprob}]` for the tokens of every segment's text, in order."""
    texts = [s for s in segments if s.get("text", "").strip()]
    if not texts:
        return []
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language)
    spans = alignment_windows(texts, len(audio) / SAMPLE_RATE)
    found: list[dict[str, Any]] = []
    for call in alignment_calls(model, tokenizer, audio, texts, spans):
        scored = model.model.align(call.encoder_output, tokenizer.sot_sequence, call.tokens, call.frames)
        for ids, result in zip(call.tokens, scored, strict=True):
            for token, probability in zip(ids, result.text_token_probs, strict=True):
                raw = token_bytes(model, token)
                found.append(
                    {
                        "token": raw.decode("utf-8", errors="replace"),
                        "bytes": list(raw),
                        "logprob": round(math.log(max(float(probability), FLOOR)), 6),
                    }
                )
    return found
