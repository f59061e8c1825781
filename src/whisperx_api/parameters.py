"""No request parameter is silently ignored.

Run before every handler (Litestar's before_request hook), from what the handler declares:
- a query parameter or form field the endpoint does not take is a 422 UNKNOWN_PARAMETER naming
  it and the accepted names closest to it (400 on /v1, as OpenAI answers);
- pipeline options (the fields of transcription.schemas.BaseOptions and its subclasses) may also come
  as query parameters, the reference service's way: they are merged into the parsed form, so
  Litestar validates them exactly like form fields. The same option in both places (or twice
  in the query) with different values is a 422 CONFLICTING_PARAMETER.
Unknown fields of JSON bodies are caught by their structs (forbid_unknown_fields) and reported
the same way (errors.py).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.enums import RequestEncodingType
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.params import BodyKwarg, ParameterKwarg
from litestar.types import Empty
from litestar.utils.scope.state import ScopeState

from whisperx_api.errors import ApiError, ErrorBody, error_response
from whisperx_api.errors import handle_validation as validation_response
from whisperx_api.transcription.schemas import BaseOptions

# form fields that carry the request's content: never options, never in the query
BODY_ONLY = frozenset({"file", "transcript", "url", "aligned_transcript", "diarization_result"})
RESERVED = frozenset({"request", "socket", "state", "scope", "headers", "cookies", "query", "body", "data"})
FORM_TYPES = (RequestEncodingType.MULTI_PART, RequestEncodingType.URL_ENCODED)
_PATH_PARAMETER = re.compile(r"{(\w+)(?::\w+)?}")


@dataclass(frozen=True)
class Accepted:
    """What one endpoint takes."""

    query: frozenset[str]  # its own query parameters
    form: frozenset[str]  # its form fields (empty: no form body)
    encoding: str | None  # how its form is encoded (multipart, url-encoded)
    options: frozenset[str]  # form fields that may also come as query parameters
    json: frozenset[str]  # fields of its JSON body (empty: none, or not a struct)
    fields: dict[str, Any]  # form field -> type, to compare values given twice


def _struct_of(annotation: Any) -> type[msgspec.Struct] | None:
    while hasattr(annotation, "__origin__") and hasattr(annotation, "__metadata__"):  # Annotated[...]
        annotation = annotation.__origin__
    return annotation if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct) else None


@cache
def accepted(handler: HTTPRouteHandler) -> Accepted:
    path_names = {name for path in handler.paths for name in _PATH_PARAMETER.findall(path)}
    dependencies = set(handler.resolve_dependencies())
    query: set[str] = set()
    form: frozenset[str] = frozenset()
    encoding: str | None = None
    json: frozenset[str] = frozenset()
    options: frozenset[str] = frozenset()
    fields: dict[str, Any] = {}
    for name, field in handler.parsed_fn_signature.parameters.items():
        if name == "data":
            struct = _struct_of(field.annotation)
            if struct is None:
                continue
            info = {f.encode_name: f.type for f in msgspec.structs.fields(struct)}
            body = field.kwarg_definition
            if isinstance(body, BodyKwarg) and body.media_type in FORM_TYPES:
                form, fields, encoding = frozenset(info), info, RequestEncodingType(body.media_type).value
                if issubclass(struct, BaseOptions):
                    options = form - BODY_ONLY
            else:
                json = frozenset(info)
            continue
        if name in RESERVED or name in dependencies or name in path_names:
            continue
        kwarg = field.kwarg_definition
        if isinstance(kwarg, ParameterKwarg):
            if kwarg.header or kwarg.cookie:
                continue
            query.add(kwarg.query or name)
        else:
            query.add(name)
    return Accepted(frozenset(query), form, encoding, options, json, fields)


def client_error_status(request: Request[Any, Any, Any]) -> int:
    """422, or what the endpoint's API answers invalid requests with (OpenAI: 400)."""
    return int(request.route_handler.opt.get("client_error_status", 422))


def unknown_parameter(name: str, known: frozenset[str], where: str, status: int = 422) -> ApiError:
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    listing = ", ".join(sorted(known)) if known else "none"
    return ApiError(
        status, f"unknown {where} {name[:100]!r}{hint} (accepted: {listing})", "UNKNOWN_PARAMETER", name[:100]
    )


def _same(field_type: Any, a: Any, b: Any) -> bool:
    """Two values of one option, compared as the option's type (so `5` and `5.0` agree)."""
    try:
        return bool(msgspec.convert(a, field_type, strict=False) == msgspec.convert(b, field_type, strict=False))
    except (msgspec.ValidationError, TypeError):
        return bool(a == b)


def _is_list(field_type: Any) -> bool:
    text = str(field_type)
    return text.startswith("list[") or "list[" in text


async def check_parameters(request: Request[Any, Any, Any]) -> None:
    handler = request.route_handler
    if not isinstance(handler, HTTPRouteHandler) or not handler.resolve_include_in_schema():
        return  # the docs pages and other framework routes
    status = client_error_status(request)
    known = accepted(handler)
    query = request.query_params
    # the form is read before any refusal: an answer sent while an upload is still arriving
    # reaches the client as a reset connection instead of the error (the server closes a socket
    # with unread data); parsed once: Litestar reads the form from the same state
    takes_form = bool(known.form) and request.content_type[0] == known.encoding
    form = await request.form() if takes_form else None
    for name in query:
        if name not in known.query and name not in known.options:
            raise unknown_parameter(name, known.query | known.options, "query parameter", status)
    if form is None:
        return  # no form, or not the one the endpoint takes: Litestar refuses the body itself
    for name in form:
        if name not in known.form:
            raise unknown_parameter(name, known.form, "form field", status)
    state = ScopeState.from_scope(request.scope)
    if state.form is Empty:
        return
    # a copy: Litestar caches parsed url-encoded bodies (lru_cache), so the parsed dict may be
    # shared with every other request that sent the same body
    # and an empty field is an absent one, as the reference (FastAPI) reads forms and as browsers
    # and Swagger's "Try it out" send fields left blank
    parsed: dict[str, Any] = {name: value for name, value in state.form.items() if value != ""}
    # a list field given once arrives as one value
    for name in [n for n, given in parsed.items() if not isinstance(given, list)]:
        if _is_list(known.fields.get(name)):
            parsed[name] = [parsed[name]]
    for name in known.options & set(query):
        values = query.getall(name)
        field_type = known.fields[name]
        many = _is_list(field_type)
        if not many and any(not _same(field_type, v, values[0]) for v in values[1:]):
            raise ApiError(422, f"{name} is given more than once with different values", "CONFLICTING_PARAMETER", name)
        value: Any = values if many else values[0]
        if name in parsed:
            given: Any = parsed[name]
            if many and not isinstance(given, list):
                given = [given]
            if not _same(field_type, given, value):
                raise ApiError(
                    422, f"{name} is given as a query parameter and as a form field with different values",
                    "CONFLICTING_PARAMETER", name,
                )  # fmt: skip
        else:
            parsed[name] = value
    state.form = parsed


_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `([^`]+)`")


def handle_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[ErrorBody]:
    """Invalid parameters: the one error body; an unknown JSON field as UNKNOWN_PARAMETER."""
    found = _UNKNOWN_FIELD.search(str(exc.extra) + str(exc.detail))
    handler = request.scope.get("route_handler")
    if found is not None and isinstance(handler, HTTPRouteHandler):
        error = unknown_parameter(found.group(1), accepted(handler).json, "field", client_error_status(request))
        return error_response(error.status_code, error.message, error.code, error.param)
    response = validation_response(request, exc)
    body = response.content
    if client_error_status(request) != 422 and isinstance(body, ErrorBody):
        return error_response(client_error_status(request), body.error.message, body.error.code, body.error.param)
    return response
