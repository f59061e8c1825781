"""/speakers: the speaker library (CRUD, enrolment from audio, similarity search, identification)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
import numpy as np
from litestar import Controller, delete, get, post, put
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter

from whisperx_api.db.models import MAX_OFFSET, TaskType
from whisperx_api.errors import ApiError, parse_uuid
from whisperx_api.media.intake import upload_fetcher
from whisperx_api.openapi import error_responses
from whisperx_api.pipeline.results import Enrolled
from whisperx_api.settings import Settings
from whisperx_api.speaker_library.library import Comparison, NewSpeaker, SpeakerLibrary
from whisperx_api.speaker_library.vectors import VectorError, default_threshold, prepare
from whisperx_api.speakers.schemas import (
    Candidate,
    EnrolledSpeaker,
    EnrollForm,
    IdentifyRequest,
    IdentifyResponse,
    SearchHit,
    SearchRequest,
    SearchResponse,
    SpeakerCreate,
    SpeakerDeleted,
    SpeakerList,
    SpeakerOut,
    SpeakersDeleted,
    SpeakerUpdate,
    to_out,
)
from whisperx_api.transcription.options import current_encoder, enrolment_options
from whisperx_api.transcription.params import EnrolmentIn, TaskParams
from whisperx_api.transcription.service import Submission, TranscriptionService

MULTIPART = Body(media_type=RequestEncodingType.MULTI_PART)


def parse_speaker_id(identifier: str) -> UUID:
    return parse_uuid(identifier, "speaker", "SPEAKER_NOT_FOUND", "speaker_uuid")


def not_found(speaker_id: UUID) -> ApiError:
    return ApiError(404, f"speaker {speaker_id} not found", "SPEAKER_NOT_FOUND", "speaker_uuid")


def clean_label(label: str) -> str:
    cleaned = " ".join(label.split())
    if not cleaned:
        raise ApiError(422, "speaker_label must not be blank", "VALIDATION_ERROR", "speaker_label")
    return cleaned


def vector_of(values: list[float], param: str = "embedding") -> np.ndarray:
    try:
        return prepare(values)
    except VectorError as exc:
        raise ApiError(422, f"{param}: {exc.message}", exc.code, param) from None


async def checked_vector(
    library: SpeakerLibrary, values: list[float], encoder_model: str, param: str = "embedding"
) -> np.ndarray:
    vector = vector_of(values, param)
    try:
        await library.check_dimension(encoder_model, int(vector.size))
    except VectorError as exc:
        raise ApiError(422, exc.message, exc.code, param) from None
    return vector


def default_encoder(settings: Settings) -> str:
    return current_encoder(settings)


async def comparison_note(library: SpeakerLibrary, comparison: Comparison, dimension: int) -> str | None:
    """Why nothing could be compared, naming what the library does hold."""
    if comparison.compared:
        return None
    held = [f"{model} ({dim}-dim): {count}" for model, dim, count in await library.holdings()]
    return f"no stored speakers were made by encoder {comparison.encoder_model!r} with {dimension} dimensions; " + (
        f"the library holds {'; '.join(held)}" if held else "the library is empty"
    )


class SpeakerController(Controller):
    path = "/speakers"
    tags = ["Speakers"]

    @post("/", status_code=201, summary="Store a speaker vector under a label",
          responses=error_responses(400, 422))  # fmt: skip
    async def create_speaker(self, library: SpeakerLibrary, settings: Settings, data: SpeakerCreate) -> SpeakerOut:
        encoder_model = data.encoder_model or default_encoder(settings)
        vector = await checked_vector(library, data.embedding, encoder_model)
        (speaker,) = await library.add(
            [NewSpeaker(clean_label(data.speaker_label), vector, encoder_model, data.description, data.task_uuid)]
        )
        return to_out(speaker, with_embedding=True)

    @post("/enroll", status_code=201, responses=error_responses(400, 413, 415, 422, 503),
          summary="Enrol a voice from a recording of that one person (several samples per label are allowed)")  # fmt: skip
    async def enroll(
        self,
        transcription: TranscriptionService,
        library: SpeakerLibrary,
        settings: Settings,
        data: Annotated[EnrollForm, MULTIPART],
    ) -> EnrolledSpeaker:
        """Runs within the request, as a task of its own (visible under /task), taking a sync slot."""
        label = clean_label(data.speaker_label)
        params = TaskParams(
            options=enrolment_options(settings),
            enrolment=EnrolmentIn(speaker_label=label, description=data.description, task_uuid=data.task_uuid),
        )  # fmt: skip
        task_id = await transcription.submit(
            Submission(TaskType.SPEAKER_ENROLMENT, params, upload_fetcher(transcription.media, data.file))
        )
        outcome = await transcription.run_inline(task_id)
        enrolled = outcome.raise_for_client(422)
        assert isinstance(enrolled, Enrolled)
        speaker = await library.get(UUID(enrolled.speaker_uuid))
        if speaker is None:
            raise not_found(UUID(enrolled.speaker_uuid))
        return EnrolledSpeaker(
            **msgspec.structs.asdict(to_out(speaker)), speech_seconds=enrolled.speech_seconds,
            audio_duration=enrolled.audio_duration,
        )  # fmt: skip

    @get("/", summary="List stored speakers, newest first", responses=error_responses(422))
    async def list_speakers(
        self,
        library: SpeakerLibrary,
        task_uuid: Annotated[UUID | None, Parameter(description="only speakers linked to this task")] = None,
        label: Annotated[str | None, Parameter(description="only speakers with exactly this label")] = None,
        limit: Annotated[int, Parameter(ge=1, le=1000, description="page size")] = 100,
        offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET, description="rows to skip")] = 0,
        include_embeddings: Annotated[bool, Parameter(description="include each vector")] = False,
    ) -> SpeakerList:
        rows, total = await library.page(task_id=task_uuid, label=label, limit=limit, offset=offset)
        return SpeakerList([to_out(r, include_embeddings) for r in rows], total=total, limit=limit, offset=offset)

    @delete("/", status_code=200, summary="Delete every speaker linked to a task", responses=error_responses(422))
    async def delete_for_task(
        self, library: SpeakerLibrary, task_uuid: Annotated[UUID, Parameter(description="the task whose speakers go")]
    ) -> SpeakersDeleted:
        return SpeakersDeleted(task_uuid=task_uuid, deleted=await library.delete_for_task(task_uuid))

    @get("/{speaker_uuid:str}", summary="Get a stored speaker with its vector", responses=error_responses(404))
    async def get_speaker(self, library: SpeakerLibrary, speaker_uuid: str) -> SpeakerOut:
        sid = parse_speaker_id(speaker_uuid)
        speaker = await library.get(sid)
        if speaker is None:
            raise not_found(sid)
        return to_out(speaker, with_embedding=True)

    @put("/{speaker_uuid:str}", summary="Change a speaker's label, description, task link or vector (partial)",
         responses=error_responses(404, 422))  # fmt: skip
    async def update_speaker(self, library: SpeakerLibrary, speaker_uuid: str, data: SpeakerUpdate) -> SpeakerOut:
        sid = parse_speaker_id(speaker_uuid)
        given = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
        if not given:
            raise ApiError(422, "the update is empty; give at least one field to change", "EMPTY_UPDATE")
        current = await library.get(sid)
        if current is None:
            raise not_found(sid)
        changes: dict[str, Any] = {}
        if "speaker_label" in given:
            changes["label"] = clean_label(given["speaker_label"])
        if "description" in given:
            changes["description"] = given["description"]
        if "task_uuid" in given:
            changes["task_id"] = given["task_uuid"]
        if "embedding" in given:
            encoder_model = given.get("encoder_model") or current.encoder_model
            changes["vector"] = await checked_vector(library, given["embedding"], encoder_model)
            changes["encoder_model"] = encoder_model
        elif "encoder_model" in given:
            raise ApiError(
                422, "encoder_model can change only together with the embedding it describes", "VALIDATION_ERROR",
                "encoder_model",
            )  # fmt: skip
        updated = await library.update(sid, changes)
        if updated is None:
            raise not_found(sid)
        return to_out(updated, with_embedding=True)

    @delete("/{speaker_uuid:str}", status_code=200, summary="Delete a stored speaker", responses=error_responses(404))
    async def delete_speaker(self, library: SpeakerLibrary, speaker_uuid: str) -> SpeakerDeleted:
        sid = parse_speaker_id(speaker_uuid)
        if not await library.delete(sid):
            raise not_found(sid)
        return SpeakerDeleted(uuid=sid)

    @post("/search", status_code=200, responses=error_responses(400, 422),
          summary="Stored speakers most similar to a vector (cosine similarity, most similar first)")  # fmt: skip
    async def search(self, library: SpeakerLibrary, settings: Settings, data: SearchRequest) -> SearchResponse:
        encoder_model = data.encoder_model or default_encoder(settings)
        query = await checked_vector(library, data.embedding, encoder_model)
        threshold = data.threshold if data.threshold is not None else default_threshold(encoder_model)
        comparison, hits = await library.search(query, encoder_model, data.limit, threshold)
        rows = await library.by_ids([h.entry.id for h in hits])
        return SearchResponse(
            # a row deleted since the index snapshot was taken is left out
            results=[SearchHit(to_out(rows[h.entry.id]), h.similarity) for h in hits if h.entry.id in rows],
            encoder_model=encoder_model, dimension=int(query.size), compared=comparison.compared, threshold=threshold,
            note=await comparison_note(library, comparison, int(query.size)),
        )  # fmt: skip

    @post("/identify", status_code=200, responses=error_responses(400, 404, 422),
          summary="The stored person a vector belongs to: the best label above the threshold, else 404")  # fmt: skip
    async def identify(self, library: SpeakerLibrary, settings: Settings, data: IdentifyRequest) -> IdentifyResponse:
        encoder_model = data.encoder_model or default_encoder(settings)
        query = await checked_vector(library, data.embedding, encoder_model)
        threshold = data.threshold if data.threshold is not None else default_threshold(encoder_model)
        comparison, ranked = await library.identify(query, encoder_model, threshold)
        if not comparison.compared:
            note = await comparison_note(library, comparison, int(query.size))
            raise ApiError(404, f"nothing to identify against: {note}", "NO_COMPARABLE_SPEAKERS", "embedding")
        rows = await library.by_ids([hit.entry.id for hit, _ in ranked[:1]])
        if not ranked or ranked[0][0].entry.id not in rows:
            raise ApiError(
                404, f"no stored speaker reaches similarity {threshold} (compared with {comparison.compared})",
                "SPEAKER_NOT_IDENTIFIED", "embedding",
            )  # fmt: skip
        best, samples = ranked[0]
        return IdentifyResponse(
            speaker_label=best.entry.label, similarity=best.similarity, speaker=to_out(rows[best.entry.id]),
            samples=samples, encoder_model=encoder_model, compared=comparison.compared, threshold=threshold,
            candidates=[Candidate(hit.entry.label, hit.similarity, n) for hit, n in ranked],
        )  # fmt: skip
