"""OpenAPI: docs UIs and the documented error responses every route declares."""

from __future__ import annotations

from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from whisperx_api.errors import ErrorBody

_DESCRIPTIONS = {
    400: "Bad request",
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


def openapi_config(version: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="whisperx-api",
        version=version,
        description="Speech-to-text with word timings, speakers and subtitles. Every error has the body "
        '`{"error": {"message", "type", "code", "param"}}`.',
        path="/docs",
        render_plugins=[SwaggerRenderPlugin(path="/"), ScalarRenderPlugin(path="/scalar")],
        components=Components(
            security_schemes={
                "BearerToken": SecurityScheme(type="http", scheme="bearer", description="AUTH__BEARER_TOKEN")
            }
        ),
    )
