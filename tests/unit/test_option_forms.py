"""The endpoints' option structs declare shared options once in spirit: where one option appears in
several of them, its type and default are the same everywhere."""

from __future__ import annotations

import msgspec

from whisperx_api.transcription.schemas import AlignOnlyOptions, DiarizeOnlyOptions, FullOptions, TranscribeOptions


def test_shared_options_agree() -> None:
    seen: dict[str, tuple[object, object]] = {}
    for struct in (FullOptions, TranscribeOptions, AlignOnlyOptions, DiarizeOnlyOptions):
        for field in msgspec.structs.fields(struct):
            spec = (field.type, field.default)
            assert seen.setdefault(field.name, spec) == spec, (struct.__name__, field.name)


def test_full_options_cover_the_services() -> None:
    full = {f.name for f in msgspec.structs.fields(FullOptions)}
    for struct in (TranscribeOptions, AlignOnlyOptions, DiarizeOnlyOptions):
        assert {f.name for f in msgspec.structs.fields(struct)} <= full, struct.__name__
