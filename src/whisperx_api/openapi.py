"""OpenAPI: docs UIs and the documented error responses every route declares."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import msgspec
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.openapi.spec import Components, OpenAPIType, Operation, Parameter, Reference, Schema, SecurityScheme

from whisperx_api.errors import ErrorBody

_DESCRIPTIONS = {
    400: "Bad request",
    500: "Internal error",
    401: "Missing or wrong bearer token",
    404: "Not found",
    409: "Not in a state that allows this",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid parameters",
    429: "Rate limit exceeded",
    502: "The remote server failed",
    503: "Overloaded or a dependency is unavailable",
    504: "The remote server did not answer in time",
}


def error_responses(*codes: int) -> dict[int, ResponseSpec]:
    return {
        code: ResponseSpec(data_container=ErrorBody, description=_DESCRIPTIONS.get(code, "Error")) for code in codes
    }


def openapi_config(version: str, render_plugins: Sequence[OpenAPIRenderPlugin]) -> OpenAPIConfig:
    """The OpenAPI document at /docs/openapi.json, shown by `render_plugins` (Swagger at /docs,
    Scalar at /docs/scalar: web/assets.py, which serves their files)."""
    return OpenAPIConfig(
        title="whisperx-api",
        version=version,
        description="Speech-to-text with word timings, speakers and subtitles. Every error has the body "
        '`{"error": {"message", "type", "code", "param"}}`.',
        path="/docs",
        render_plugins=list(render_plugins),
        components=Components(
            security_schemes={
                "BearerToken": SecurityScheme(type="http", scheme="bearer", description="AUTH__BEARER_TOKEN")
            }
        ),
    )


_SCHEMA_KEYS = {
    "enum": "enum", "minimum": "minimum", "maximum": "maximum", "exclusiveMinimum": "exclusive_minimum",
    "exclusiveMaximum": "exclusive_maximum", "minLength": "min_length", "maxLength": "max_length",
    "default": "default", "description": "description",
}  # fmt: skip


def schema_from_json(json_schema: dict[str, Any]) -> Schema:
    """A JSON schema (as msgspec writes it) as Litestar's OpenAPI Schema."""
    values: dict[str, Any] = {_SCHEMA_KEYS[k]: v for k, v in json_schema.items() if k in _SCHEMA_KEYS}
    if "type" in json_schema:
        values["type"] = OpenAPIType(json_schema["type"])
    elif "enum" in json_schema and all(isinstance(v, str) for v in json_schema["enum"]):
        values["type"] = OpenAPIType.STRING  # msgspec leaves a Literal's type implicit
    if "items" in json_schema:
        values["items"] = schema_from_json(json_schema["items"])
    if "anyOf" in json_schema:
        values["one_of"] = [schema_from_json(option) for option in json_schema["anyOf"]]
    return Schema(**values)


def _not_null(json_schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or has a value: `X | None` is documented as X (with its default)."""
    options = [o for o in json_schema.get("anyOf", []) if o.get("type") != "null"]
    if len(options) == 1:
        return {**options[0], **{k: v for k, v in json_schema.items() if k not in ("anyOf", "default")}}
    return json_schema


def query_options(options: type[msgspec.Struct], note: str) -> type[Operation]:
    """An Operation class that documents each field of `options` as a query parameter too, and
    says so in the description (route decorators' operation_class)."""
    (_,), components = msgspec.json.schema_components([options])
    properties: dict[str, Any] = components[options.__name__]["properties"]
    parameters = [
        Parameter(name=name, param_in="query", schema=schema_from_json(_not_null(s)), description=s.get("description"))
        for name, s in properties.items()
    ]

    @dataclass
    class WithQueryOptions(Operation):
        def __post_init__(self) -> None:
            self.parameters = [*(self.parameters or []), *parameters]
            self.description = f"{self.description}\n\n{note}" if self.description else note

    return WithQueryOptions


_FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")


_BLANK = Schema(type=OpenAPIType.STRING, max_length=0, description="blank: as if absent")


def _form_field(schema: Schema | Reference) -> Schema | Reference:
    """A form field is absent, blank (the same: parameters.py) or has a value, never null: `X | None`
    is documented as X or blank, with "" as its example. Swagger's "Try it out" fills a field from
    its example or default, else with a sample value such as "string", and sends it; a blank field
    it leaves out."""
    if not isinstance(schema, Schema) or schema.default is not None:
        return schema
    plain = schema
    if schema.one_of:
        options = [o for o in schema.one_of if not (isinstance(o, Schema) and o.type == OpenAPIType.NULL)]
        if len(options) == 1 and isinstance(options[0], Schema):
            plain = replace(options[0])
            for name in ("maximum", "minimum", "max_length", "min_length", "description"):
                if getattr(plain, name) is None:
                    setattr(plain, name, getattr(schema, name))
    if isinstance(plain.type, list) and OpenAPIType.NULL in plain.type:
        types: list[OpenAPIType] = [t for t in plain.type if t != OpenAPIType.NULL]
        enum = [v for v in plain.enum or [] if v is not None] or None
        plain = replace(plain, type=types[0] if len(types) == 1 else types, enum=enum)
    if plain.format is not None:
        return plain  # a file
    description, plain.description = plain.description, None
    blank: Any = [] if plain.type == OpenAPIType.ARRAY else ""  # Swagger parses an array's example as JSON
    return Schema(any_of=[plain, _BLANK], examples=[blank], description=description)


def close_request_bodies(app: Litestar) -> None:
    """Request bodies take no fields beyond their schema's (unknown ones are refused, see
    parameters.py): say so in the document (additionalProperties: false). Form fields are
    documented without null (_form_field)."""
    document = app.openapi_schema  # built once here; the docs serve this object
    schemas = document.components.schemas if document.components and document.components.schemas else {}
    for path in (document.paths or {}).values():
        for operation in (path.get, path.put, path.post, path.patch, path.delete):
            body = operation.request_body if operation is not None else None
            for media_type, media in (getattr(body, "content", None) or {}).items():
                ref = getattr(media.schema, "ref", None)
                target = schemas.get(ref.rsplit("/", 1)[-1]) if isinstance(ref, str) else media.schema
                if isinstance(target, Schema) and target.properties:
                    target.additional_properties = False
                    if media_type in _FORMS:
                        target.properties = {name: _form_field(s) for name, s in target.properties.items()}


def document_errors(app: Litestar, statuses: Iterable[int]) -> None:
    """Every operation documents these error statuses with the one error body (the framework
    would document its own `{status_code, detail, extra}` shape for 400, which this service
    never sends). A handler's own `responses` take precedence."""
    defaults = error_responses(*statuses)
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if isinstance(handler, HTTPRouteHandler) and handler.resolve_include_in_schema():
                handler.responses = {**defaults, **(handler.responses or {})}
