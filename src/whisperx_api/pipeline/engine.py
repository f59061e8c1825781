"""The pipeline's entry points: decode -> VAD -> transcribe -> align -> diarize -> combine.

Plain functions of data, run on the engine's inference threads inside the inference process
(pipeline/remote.py). Models come from one warm cache per engine; every model call holds a
compute slot (MAX_CONCURRENT_GPU_TASKS).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import numpy as np

from whisperx_api.memory import buffers_kept, release_after_stage
from whisperx_api.pipeline import align as align_stage
from whisperx_api.pipeline.audio import SAMPLE_RATE, decode_audio, memory_released
from whisperx_api.pipeline.combine import assign_speakers, attribute
from whisperx_api.pipeline.diarization import campp, embedded, hub
from whisperx_api.pipeline.diarization.segmentation import SegmentationDiarizer
from whisperx_api.pipeline.diarization.turns import Diarization, SpeakerTurn
from whisperx_api.pipeline.encoders import diarization_backend, pyannote_configured
from whisperx_api.pipeline.errors import PipelineError
from whisperx_api.pipeline.logprobs import token_logprobs
from whisperx_api.pipeline.models import (
    ComputeLimit,
    ModelCache,
    resolve_compute_type,
    resolve_device,
    resolve_whisper_model,
)
from whisperx_api.pipeline.options import (
    DiarizeOptions,
    EngineConfig,
    Enrolment,
    PipelineOptions,
    VadOptions,
    WhisperOptions,
)
from whisperx_api.pipeline.progress import ProgressCallback, start_stage
from whisperx_api.pipeline.results import Diarized, Diarizer, Segment, Transcript, Turn, transcript_from
from whisperx_api.pipeline.transcribe import load_whisper, transcribe
from whisperx_api.pipeline.vad import PyannoteVad, Region, SileroVad, VadModel, merge_regions

logger = logging.getLogger(__name__)
T = TypeVar("T")


# How much nicer than the process the inference threads are (the compute threads they start inherit it).
INFERENCE_NICE = 10


def lower_thread_priority() -> None:
    """Let the event loop thread win the CPU over inference when both want it.

    A transcription keeps every core busy; at equal priority the web thread waited its turn
    behind it and health probes took hundreds of milliseconds on a loaded machine. Linux keeps
    the nice value per thread and new threads inherit it, so the OpenMP/oneDNN teams torch and
    CTranslate2 start from these threads run at the lower priority too. Idle cores are used all
    the same.
    """
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or not allowed: run as is
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + INFERENCE_NICE))


class SpeechEngine:
    _shared: dict[EngineConfig, SpeechEngine] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls, config: EngineConfig) -> SpeechEngine:
        """One engine (one warm model cache, one compute limit) per process and configuration."""
        with cls._shared_lock:
            if config not in cls._shared:
                cls._shared[config] = cls(config)
            return cls._shared[config]

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        # Every pipeline run happens on these long-lived threads. torch's OpenMP/oneDNN keeps one
        # thread team per calling thread: model calls from ever-new threads stack teams on the
        # same cores and ran the pyannote VAD at about half speed (measured 5.5 s vs 3.0 s).
        self.executor = ThreadPoolExecutor(
            max_workers=config.max_concurrent, thread_name_prefix="inference", initializer=lower_thread_priority
        )
        self.cache = ModelCache(max_models=config.model_cache_size + 3, idle_unload_s=config.model_idle_unload_s)
        self.limit = ComputeLimit(config.max_concurrent)

    def model_loads(self) -> dict[tuple[str, ...], int]:
        return dict(self.cache.loads)

    @classmethod
    def model_loads_in_process(cls) -> int:
        """How many model loads every engine of this process made."""
        with cls._shared_lock:
            engines = list(cls._shared.values())
        return sum(sum(list(engine.cache.loads.values())) for engine in engines)

    # -- model access -------------------------------------------------------------------
    @contextmanager
    def _model(self, key: tuple[str, ...], loader: Callable[[], T]) -> Iterator[T]:
        with self.limit.slot(), self.cache.use(key, loader) as model:
            yield model

    def _device(self, whisper: WhisperOptions) -> tuple[str, str]:
        device = resolve_device(whisper.device)
        return device, resolve_compute_type(whisper.compute_type, device)

    @contextmanager
    def whisper_model(self, whisper: WhisperOptions) -> Iterator[Any]:
        device, compute_type = self._device(whisper)
        path = resolve_whisper_model(whisper.model, self.config.models_dir)
        key = ("whisper", str(path), device, str(whisper.device_index), compute_type)
        with (
            self._model(
                key, lambda: load_whisper(str(path), device, whisper.device_index, compute_type, whisper.threads)
            ) as model,
            buffers_kept(),
        ):
            yield model

    # -- stages -------------------------------------------------------------------------
    def speech_regions(
        self, audio: np.ndarray, vad: VadOptions, whisper: WhisperOptions, progress: ProgressCallback | None = None
    ) -> list[Region]:
        device, _ = self._device(whisper)
        if vad.vad_method == "silero":
            loader: Callable[[], VadModel] = SileroVad
            key: tuple[str, ...] = ("vad", "silero")
        else:
            key = ("vad", "pyannote", device)
            loader = lambda: PyannoteVad(device)  # noqa: E731
        with self._model(key, loader) as model:
            return model.regions(audio, vad, float(whisper.chunk_size), progress)

    def align(
        self, audio: np.ndarray, segments: list[dict[str, Any]], language: str, options: PipelineOptions,
        progress: ProgressCallback,
    ) -> tuple[list[dict[str, Any]], str]:  # fmt: skip
        """Returns aligned segments and the backend that produced them."""
        choice = options.align
        device, _ = self._device(options.whisper)
        model_name = align_stage.wav2vec2_model_name(language, choice.align_model)
        use_wav2vec2 = (
            choice.backend != "whisper"
            and model_name is not None
            and align_stage.wav2vec2_available(model_name, self.config.models_dir)
        )
        if choice.backend == "wav2vec2" and not use_wav2vec2:
            raise PipelineError(
                f"no wav2vec2 alignment model available for language {language!r}"
                + (f" ({model_name})" if model_name else "") + "; use align_backend=whisper or auto",
                "ALIGN_MODEL_UNAVAILABLE",
            )  # fmt: skip
        if use_wav2vec2 and model_name is not None:
            key = ("wav2vec2", model_name, device)
            with self._model(
                key, lambda: align_stage.load_wav2vec2(language, model_name, device, self.config.models_dir)
            ) as (model, meta):
                aligned = align_stage.align_with_wav2vec2(
                    model,
                    meta,
                    audio,
                    segments,
                    device,
                    choice.interpolate_method,
                    choice.return_char_alignments,
                    progress,
                )
            return aligned, f"wav2vec2:{model_name}"
        with self.whisper_model(options.whisper) as whisper:
            return align_stage.align_with_whisper(
                whisper, audio, segments, language, progress
            ), f"whisper:{options.whisper.model}"

    def diarize(
        self, audio: np.ndarray, options: DiarizeOptions, whisper: WhisperOptions, progress: ProgressCallback,
        vad: VadOptions, regions: list[Region] | None = None,
    ) -> Diarization:  # fmt: skip
        """Who spoke when. `regions` (VAD) are needed by the embedded backend only; the others
        find speech themselves."""
        device, _ = self._device(whisper)
        backend = diarization_backend(options.backend, self.config.hf_token, self.config.pyannote_pipeline)
        speakers = (options.num_speakers, options.min_speakers, options.max_speakers)
        if backend == "pyannote":
            try:
                model = self.config.pyannote_pipeline
                key = ("pyannote", model, device)
                with self._model(key, lambda: hub.load_pyannote(model, self.config.hf_token, device)) as pipeline:
                    return hub.diarize_pyannote(pipeline, model, audio, *speakers, progress)
            except PipelineError:
                raise
            except Exception as exc:
                if options.backend == "pyannote":
                    raise PipelineError(f"pyannote diarization unavailable: {exc}", "DIARIZATION_UNAVAILABLE") from exc
                logger.warning("pyannote diarization unavailable (%s); using the offline diarizer", exc)
                backend = "campp" if campp.available() else "embedded"
        if backend == "campp":
            with (
                self._model(("campp-diarizer", device), lambda: SegmentationDiarizer(device)) as diarizer,
                buffers_kept(),  # segmentation-3.0's and CAM++'s batches
            ):
                return diarizer(audio, *speakers, progress)
        if regions is None:
            regions = self.speech_regions(audio, vad, whisper)
        with self._model(("speaker-encoder", device), lambda: embedded.SpeakerEncoder(device)) as encoder:
            return embedded.diarize_embedded(encoder, audio, regions, *speakers, progress)

    def pyannote_configured(self) -> bool:
        return pyannote_configured(self.config.hf_token, self.config.pyannote_pipeline)

    def speaker_embedding(self, path: Path, options: PipelineOptions) -> Enrolment:
        """One voice's vector from a recording of that voice (speaker enrolment).

        The file is diarized as one speaker, so the vector comes from the same encoder, and is
        comparable with, the per-speaker vectors of diarization tasks.
        """
        audio = decode_audio(path)
        single = replace(options.diarize, num_speakers=1, min_speakers=None, max_speakers=None, return_embeddings=True)
        found = self.diarize(audio, single, options.whisper, lambda _s, _f: None, options.vad)
        if not found.embeddings:
            raise PipelineError("no speech long enough to take a voice sample from was found", "NO_SPEECH")
        vector = np.asarray(next(iter(found.embeddings.values())), dtype=np.float32)
        speech = round(sum(t.end - t.start for t in found.turns), 3)
        return Enrolment(vector, found.encoder, speech, round(len(audio) / SAMPLE_RATE, 3))

    # -- task entry points --------------------------------------------------------------
    def run(
        self, path: Path, options: PipelineOptions, progress: ProgressCallback, *, align: bool = True,
        diarize: bool = True, on_segment: Callable[[Segment], None] | None = None,
    ) -> Transcript:  # fmt: skip
        """Decode and run the requested stages; `align`/`diarize` False gives transcription only."""
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            # the next stage's working set does not come on top of this one's
            release_after_stage(time.perf_counter() - clock)
            now = time.perf_counter()
            timings[name] = round(now - clock, 3)
            clock = now

        progress("decoding", 0.0)
        audio = decode_audio(path)
        with memory_released(audio):  # neither the audio nor freed memory piles up over a long recording
            duration = len(audio) / SAMPLE_RATE
            lap("decode")
            regions = self.speech_regions(audio, options.vad, options.whisper, start_stage(progress, "vad", 0.05, 0.1))
            windows = merge_regions(
                regions, float(options.whisper.chunk_size), options.vad.vad_onset, options.vad.vad_offset
            )
            lap("vad")
            transcribing = start_stage(progress, "transcribing", 0.1, 0.6)  # loading the model included
            scored: list[dict[str, Any]] = []
            with self.whisper_model(options.whisper) as model:
                transcript = transcribe(
                    model,
                    audio,
                    windows,
                    options.whisper,
                    options.asr,
                    transcribing,
                    (lambda segment: on_segment(transcript_from({"segments": [segment]}).segments[0]))
                    if on_segment
                    else None,
                )
                if options.token_logprobs:
                    scored = token_logprobs(model, audio, transcript["segments"], transcript["language"])
            lap("transcribe")
            language = transcript["language"]
            segments: list[dict[str, Any]] = transcript["segments"]
            result: dict[str, Any] = {
                "language": language,
                "language_probability": transcript["language_probability"],
                "duration": round(duration, 3),
                "task": options.whisper.task,
                "model": options.whisper.model,
                "vad": options.vad.vad_method,
            }
            if options.token_logprobs:
                result["logprobs"] = scored  # timed with "transcribe": it needs the same warm model
            if align:
                # after translation the text is English, so align it as English
                align_language = "en" if options.whisper.task == "translate" else language
                segments, result["alignment"] = self.align(
                    audio, segments, align_language, options, start_stage(progress, "aligning", 0.6, 0.75)
                )
                lap("align")
            if diarize:
                found = self.diarize(
                    audio, options.diarize, options.whisper, start_stage(progress, "diarizing", 0.75, 0.95), options.vad,
                    regions,
                )  # fmt: skip
                lap("diarize")
                segments = attribute(segments, found)
                lap("combine")
                result["diarization"] = found.describe()
                result["speakers"] = found.speakers
                if options.diarize.return_embeddings:
                    result["speaker_embeddings"] = found.embeddings
            result["segments"] = segments
            result["word_segments"] = [w for s in segments for w in s.get("words", [])]
            result["timings"] = timings
            return transcript_from(result)

    def align_transcript(
        self, path: Path, transcript: Transcript, options: PipelineOptions, progress: ProgressCallback
    ) -> Transcript:
        audio = decode_audio(path)
        language = transcript.language or options.whisper.language or "en"
        given = [{"start": s.start, "end": s.end, "text": s.text} for s in transcript.segments]
        with memory_released(audio):
            segments, backend = self.align(audio, given, language, options, start_stage(progress, "aligning", 0.0, 1.0))
        return transcript_from(
            {
                "language": language, "duration": round(len(audio) / SAMPLE_RATE, 3), "alignment": backend,
                "segments": segments, "word_segments": [w for s in segments for w in s.get("words", [])],
            }
        )  # fmt: skip

    def diarize_file(self, path: Path, options: PipelineOptions, progress: ProgressCallback) -> Diarized:
        audio = decode_audio(path)
        with memory_released(audio):
            found = self.diarize(
                audio, options.diarize, options.whisper, start_stage(progress, "diarizing", 0.0, 1.0), options.vad
            )
        return Diarized(
            duration=round(len(audio) / SAMPLE_RATE, 3), diarization=Diarizer(**found.describe()),
            segments=[Turn(start=t.start, end=t.end, speaker=t.speaker) for t in found.turns],
            speakers=found.speakers,
            speaker_embeddings=found.embeddings if options.diarize.return_embeddings else None,
        )  # fmt: skip

    def combine(self, transcript: Transcript, diarization: list[Turn]) -> Transcript:
        """Speakers for a given aligned transcript from given speaker turns (no audio, no models)."""
        turns = [SpeakerTurn(float(d.start), float(d.end), str(d.speaker)) for d in diarization]
        segments = assign_speakers([msgspec.to_builtins(s) for s in transcript.segments], turns)
        return transcript_from(
            {
                "language": transcript.language, "segments": segments,
                "word_segments": [w for s in segments for w in s.get("words", [])],
                "speakers": sorted({t.speaker for t in turns}),
            }
        )  # fmt: skip
