"""Batched Whisper decoding over VAD windows (whisperx's FasterWhisperPipeline on a warm model)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import ctranslate2
import numpy as np
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import TranscriptionOptions, get_compression_ratio
from whisperx.asr import FasterWhisperPipeline, WhisperModel

from whisperx_api.pipeline.audio import SAMPLE_RATE
from whisperx_api.pipeline.errors import PipelineError
from whisperx_api.pipeline.options import AsrOptions, WhisperOptions
from whisperx_api.pipeline.progress import ProgressCallback
from whisperx_api.pipeline.vad import Region

logger = logging.getLogger(__name__)

LANGUAGE_WINDOW_S = 30
# Sequences (windows x beams) per decoder call on a CPU (DetailedWhisperModel). Each sequence holds
# its own state: in every decoder layer the keys and values of its window's 1,500 encoder frames
# and of the tokens so far, so a call's memory grows with windows x beams, and a model's size.
# The whole pipeline in one process on 5 minutes of a two-voice conversation (int8, beam 5, 2
# cores, 2026-12-05, calls in the order 4 3 2 2 3 4 windows): the transcription's peak above the
# process's rest with 4 / 3 / 2 windows per call, tiny.en 413-443 / 336 / 282-295 MB, base 497-502
# / 427-431 / 351-371; the whole pipeline 28.9-31.4 / 30.8-30.9 / 31.1-32.0 s with tiny.en and
# 40.8-43.8 / 42.0-43.1 / 40.9-44.7 s with base, the same words and speakers. The decoder was the
# peak of every task; at 2 windows it is level with the alignment's. The batch (BATCH_SIZE) still
# sets how many windows are prepared at once, and a GPU decodes it whole: batching makes it fast.
CPU_DECODE_SEQUENCES = 10


def cpu_decode_windows(beam_size: int) -> int:
    """Windows per decoder call on a CPU: as many as keep a call within CPU_DECODE_SEQUENCES
    (2 at the default beam of 5; greedy decoding up to 10)."""
    return max(1, CPU_DECODE_SEQUENCES // max(1, beam_size))


class DetailedWhisperModel(WhisperModel):
    """whisperx's batched decoder, also returning each window's tokens and no-speech probability
    (the OpenAI-compatible verbose output reports both)."""

    def generate_segment_batched(
        self, features: np.ndarray, tokenizer: Tokenizer, options: TranscriptionOptions, encoder_output: Any = None
    ) -> dict[str, list[Any]]:
        batch_size = features.shape[0]
        previous = tokenizer.encode(" " + options.initial_prompt.strip()) if options.initial_prompt else []
        prompt = self.get_prompt(
            tokenizer, previous, without_timestamps=options.without_timestamps, prefix=options.prefix,
            hotwords=options.hotwords,
        )  # fmt: skip
        results: list[Any] = []
        step = batch_size if self.model.device != "cpu" else cpu_decode_windows(options.beam_size)
        for start in range(0, batch_size, step):
            part = features[start : start + step]
            results += self.model.generate(
                self.encode(part),
                [prompt] * len(part),
                beam_size=options.beam_size,
                patience=options.patience,
                length_penalty=options.length_penalty,
                max_length=self.max_length,
                suppress_blank=options.suppress_blank,
                suppress_tokens=options.suppress_tokens,
                no_repeat_ngram_size=options.no_repeat_ngram_size,
                repetition_penalty=options.repetition_penalty,
                return_scores=True,
                return_no_speech_prob=True,
            )
        tokens = [[t for t in r.sequences_ids[0] if t < tokenizer.eot] for r in results]
        avg_logprobs = [
            r.scores[0] * (len(r.sequences_ids[0]) ** options.length_penalty) / (len(r.sequences_ids[0]) + 1)
            for r in results
        ]
        return {
            "text": tokenizer.tokenizer.decode_batch(tokens),
            "avg_logprob": avg_logprobs,
            "tokens": tokens,
            "no_speech_prob": [r.no_speech_prob for r in results],
        }

    def encode(self, features: Any) -> Any:
        """The encoder's output for a batch of windows (the decoder's here, and the Whisper word
        alignment's and logprobs' in batches of 8). On a CPU one window at a time: the encoder's
        attention over 1,500 frames is materialised for every window of a batch at once, and a
        batch of 8 (tiny.en, int8, beam 5) took the process's peak 430-448 MB above its working
        level against 205-211 MB window by window, in the same time (6.1-6.8 against 5.5-7.2 s
        per batch on 2 cores, 2026-12-03). The decoder still runs the whole batch; on a GPU the
        batch is encoded at once."""
        batch = isinstance(features, np.ndarray) and features.ndim == 3 and features.shape[0] > 1
        if self.model.device != "cpu" or not batch:  # one window may come 2-D (mels x frames)
            return super().encode(features)
        encode = super().encode  # bound here: a comprehension has no zero-argument super()
        windows = [np.asarray(encode(features[i : i + 1])) for i in range(features.shape[0])]
        return ctranslate2.StorageView.from_array(np.concatenate(windows))  # shares the array and holds it


def load_whisper(path: str, device: str, device_index: int, compute_type: str, threads: int) -> WhisperModel:
    return DetailedWhisperModel(
        path, device=device, device_index=device_index, compute_type=compute_type, cpu_threads=threads or 0
    )


def _options(asr: AsrOptions, multilingual: bool) -> TranscriptionOptions:
    return TranscriptionOptions(
        beam_size=asr.beam_size,
        best_of=asr.best_of,
        patience=asr.patience,
        length_penalty=asr.length_penalty,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        temperatures=list(asr.temperatures),
        compression_ratio_threshold=asr.compression_ratio_threshold,
        log_prob_threshold=asr.log_prob_threshold,
        no_speech_threshold=asr.no_speech_threshold,
        condition_on_previous_text=False,
        prompt_reset_on_temperature=0.5,
        initial_prompt=asr.initial_prompt,
        prefix=None,
        suppress_blank=True,
        suppress_tokens=list(asr.suppress_tokens),
        without_timestamps=True,
        max_initial_timestamp=0.0,
        word_timestamps=False,
        prepend_punctuations="\"'“¿([{-",
        append_punctuations="\"'.。,，!！?？:：”)]}、",
        multilingual=multilingual,
        max_new_tokens=None,
        clip_timestamps="0",
        hallucination_silence_threshold=None,
        hotwords=asr.hotwords,
    )


def detect_language(model: WhisperModel, audio: np.ndarray, regions: list[Region]) -> tuple[str, float]:
    """Detect on the first 30 s of speech (not of the file, which may open with silence)."""
    start = int(regions[0].start * SAMPLE_RATE) if regions else 0
    samples = LANGUAGE_WINDOW_S * SAMPLE_RATE
    speech = audio[start : start + samples]
    window = np.pad(speech, (0, samples - len(speech)))
    n_mels = model.feat_kwargs.get("feature_size") or 80
    features = model.feature_extractor(window)[:, : model.feature_extractor.nb_max_frames]
    if features.shape[0] != n_mels:
        raise PipelineError("model feature size mismatch", "MODEL_ERROR")
    encoder_output = model.encode(np.ascontiguousarray(features[np.newaxis, ...]))
    language_token, probability = model.model.detect_language(encoder_output)[0][0]
    return language_token[2:-2], float(probability)


def transcribe(
    model: WhisperModel,
    audio: np.ndarray,
    windows: list[Region],
    whisper: WhisperOptions,
    asr: AsrOptions,
    progress: ProgressCallback,
    on_segment: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Decode each VAD window; returns segments (one per window), language and its probability.
    `on_segment` sees each segment as soon as it is decoded (streaming)."""
    multilingual = bool(model.model.is_multilingual)
    language, probability = whisper.language, 1.0
    if not multilingual:
        if language not in (None, "en"):
            raise PipelineError(
                f"model {whisper.model!r} is English-only; language {language!r} needs a multilingual model",
                "INVALID_LANGUAGE_CODE",
            )
        if whisper.task == "translate":
            raise PipelineError(
                f"model {whisper.model!r} is English-only and cannot translate", "TRANSLATION_UNSUPPORTED"
            )
        language = "en"
    if not windows:
        return {"segments": [], "language": language or "en", "language_probability": 0.0}
    if language is None:
        language, probability = detect_language(model, audio, windows)
        logger.info("detected language %s (p=%.2f)", language, probability)
    tokenizer = Tokenizer(model.hf_tokenizer, multilingual, task=whisper.task, language=language)
    pipeline = FasterWhisperPipeline(
        model=model,
        vad=None,
        vad_params={},
        options=_options(asr, multilingual),
        tokenizer=tokenizer,
        language=language,
        suppress_numerals=asr.suppress_numerals,
    )
    if asr.suppress_numerals:
        from dataclasses import replace

        from whisperx.asr import find_numeral_symbol_tokens

        suppressed = sorted(set(find_numeral_symbol_tokens(tokenizer)) | set(asr.suppress_tokens))
        pipeline.options = replace(pipeline.options, suppress_tokens=suppressed)

    def inputs() -> Iterator[dict[str, np.ndarray]]:
        for window in windows:
            yield {"inputs": audio[int(window.start * SAMPLE_RATE) : int(window.end * SAMPLE_RATE)]}

    segments = []
    batch_size = max(1, whisper.batch_size)
    for index, out in enumerate(pipeline(inputs(), batch_size=batch_size, num_workers=0)):
        if batch_size == 1:  # the HF pipeline leaves a batch of one wrapped in lists
            out = {key: value[0] for key, value in out.items()}
        segment = {
            "start": round(windows[index].start, 3),
            "end": round(windows[index].end, 3),
            "text": out["text"],
            "avg_logprob": round(float(out["avg_logprob"]), 4),
            "no_speech_prob": round(float(out["no_speech_prob"]), 4),
            "tokens": [int(t) for t in out["tokens"]],
            "temperature": asr.temperatures[0],  # batched decoding has no temperature fallback
            "compression_ratio": round(get_compression_ratio(out["text"]), 4),
            "seek": round(windows[index].start * 100),  # mel frames, as Whisper reports it
        }
        segments.append(segment)
        if on_segment is not None:
            on_segment(segment)
        progress("transcribing", (index + 1) / len(windows))
    return {"segments": segments, "language": language, "language_probability": round(probability, 4)}
