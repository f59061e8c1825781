"""OpenAI's known_speaker_names[] / known_speaker_references[]: who the diarized speakers may be.

Each reference is a data URL of 2-10 s of audio (`data:audio/wav;base64,...`), at most four, as
OpenAI takes them. They are stored for the request only (the task deletes them when it ends) and
embedded with the diarizer's speaker encoder when the task runs. Beyond OpenAI: a name without a
reference means the speaker library's voices of that label, and `store_known_speakers=true` adds
the references to the library.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import re
from uuid import uuid4

from whisperx_api.errors import ApiError
from whisperx_api.media.storage import MediaStore
from whisperx_api.pipeline.audio import probe_media
from whisperx_api.pipeline.errors import AudioProcessingError
from whisperx_api.transcription.params import KnownSpeaker

NAMES = "known_speaker_names[]"
REFERENCES = "known_speaker_references[]"
MOST = 4
SHORTEST_S, LONGEST_S = 2.0, 10.0
DATA_URL = re.compile(r"^data:(audio|video)/[\w.+-]+(;[\w.+-]+=[\w.+-]+)*;base64,", re.IGNORECASE)


def _refused(param: str, message: str) -> ApiError:
    return ApiError(400, message, "invalid_value", param)


async def _stored(reference: str, name: str, media: MediaStore) -> str:
    """The reference as a file in the media store, checked to be 2-10 s of audio."""
    found = DATA_URL.match(reference)
    if found is None:
        raise _refused(REFERENCES, f"the reference of {name!r} is not a data URL of audio (data:audio/...;base64,...)")
    try:
        audio = base64.b64decode(reference[found.end() :], validate=True)
    except (binascii.Error, ValueError):
        raise _refused(REFERENCES, f"the reference of {name!r} is not valid base64") from None
    path, _ = await media.save(io.BytesIO(audio), uuid4(), ".reference")
    try:
        info = await asyncio.to_thread(probe_media, path)
    except AudioProcessingError as exc:
        await asyncio.to_thread(media.delete, path)
        raise _refused(REFERENCES, f"the reference of {name!r} is not usable audio: {exc.message}") from None
    if not SHORTEST_S <= info.duration <= LONGEST_S:
        await asyncio.to_thread(media.delete, path)
        raise _refused(
            REFERENCES,
            f"the reference of {name!r} lasts {info.duration:.1f} s; it must last {SHORTEST_S:.0f}-{LONGEST_S:.0f} s",
        )
    return str(path)


async def known_speakers(
    names: list[str] | None, references: list[str] | None, store: bool, media: MediaStore
) -> list[KnownSpeaker]:
    """The request's known speakers, references stored (in order: names[i] has references[i]).
    Nothing stays stored when one of them is refused."""
    names, references = names or [], references or []
    if references and not names:
        raise _refused(NAMES, "known_speaker_references[] needs known_speaker_names[] (one name per reference)")
    if len(names) > MOST:
        raise _refused(NAMES, f"at most {MOST} known speakers, got {len(names)}")
    if len(references) > len(names):
        raise _refused(REFERENCES, f"{len(references)} references for {len(names)} names: one name per reference")
    if len(set(names)) != len(names):
        raise _refused(NAMES, "each known speaker name once")
    if store and not references:
        raise _refused("store_known_speakers", "store_known_speakers needs known_speaker_references[]")
    known: list[KnownSpeaker] = []
    try:
        for index, name in enumerate(names):
            if not name.strip():
                raise _refused(NAMES, "a known speaker name is blank")
            reference = await _stored(references[index], name, media) if index < len(references) else None
            known.append(KnownSpeaker(name=name.strip(), reference=reference, store=store and reference is not None))
    except BaseException:
        await discard(known, media)
        raise
    return known


async def discard(known: list[KnownSpeaker], media: MediaStore) -> None:
    for speaker in known:
        await asyncio.to_thread(media.delete, speaker.reference)
