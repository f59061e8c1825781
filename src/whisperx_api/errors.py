"""The one error body: `{"error": {"message", "type", "code", "param"}}` (OpenAI's shape)."""

from __future__ import annotations

import logging
import re
from typing import Any
from uuid import UUID

import msgspec
from advanced_alchemy.exceptions import NotFoundError, RepositoryError
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from whisperx_api.outages import unavailable

logger = logging.getLogger(__name__)


class ErrorDetail(msgspec.Struct):
    message: str
    type: str
    code: str | None = None
    param: str | None = None


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


_TYPE_BY_STATUS = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}
_CODE_BY_STATUS = {
    400: "BAD_REQUEST",
    401: "AUTHENTICATION_FAILED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "REQUEST_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


def error_type(status_code: int) -> str:
    if status_code >= 500:
        return "server_error"
    return _TYPE_BY_STATUS.get(status_code, "invalid_request_error")


class ApiError(HTTPException):
    """An error with a stable machine code; raise it anywhere a handler runs."""

    def __init__(
        self,
        status_code: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status_code, detail=message, headers=headers)
        self.message = message
        self.code = code or _CODE_BY_STATUS.get(status_code)
        self.param = param


def parse_uuid(identifier: str, what: str, code: str, param: str) -> UUID:
    """A path identifier that is not a UUID names nothing that exists: a 404, like an unknown one."""
    try:
        return UUID(identifier)
    except ValueError:
        raise ApiError(404, f"{what} {identifier[:64]!r} not found (ids are UUIDs)", code, param) from None


def error_response(
    status_code: int,
    message: str,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[ErrorBody]:
    body = ErrorBody(
        ErrorDetail(
            message=message,
            type=error_type(status_code),
            code=code or _CODE_BY_STATUS.get(status_code),
            param=param,
        )
    )
    return Response(content=body, status_code=status_code, media_type=MediaType.JSON, headers=headers)


_FIELD_IN_MESSAGE = re.compile(r"field `([^`]+)`")
_MISSING_PARAMETER = re.compile(r"parameter '([^']+)'")


def _validation_param(extra: Any) -> tuple[str | None, str | None]:
    """First failing field and its message from Litestar's validation `extra`."""
    if isinstance(extra, list) and extra and isinstance(extra[0], dict):
        first = extra[0]
        message = first.get("message")
        # a body struct's missing/invalid field is reported as key "data"; name the field itself
        field = _FIELD_IN_MESSAGE.search(message or "")
        key = field.group(1) if field else first.get("key")
        if key is None:
            return None, message
        # "temperatures[0]" / "$.segments[2].start" -> the form field or top-level name
        name = re.split(r"[\[.]", str(key).removeprefix("$."), maxsplit=1)[0]
        return name or str(key), message
    return None, None


def handle_validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[ErrorBody]:
    param, detail = _validation_param(exc.extra)
    if param is None and (missing := _MISSING_PARAMETER.search(str(exc.detail))):
        param = missing.group(1)
    message = f"{param}: {detail}" if param and detail else (detail or str(exc.detail))
    return error_response(422, message, "VALIDATION_ERROR", param)


def handle_http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    if isinstance(exc, ApiError):
        return error_response(exc.status_code, exc.message, exc.code, exc.param, exc.headers)
    message = str(exc.detail) if exc.detail else "error"
    return error_response(exc.status_code, message, None, None, exc.headers)


def handle_not_found(_: Request[Any, Any, Any], exc: NotFoundError) -> Response[ErrorBody]:
    return error_response(404, str(exc.detail) if getattr(exc, "detail", None) else "not found", "NOT_FOUND")


# how long a client should wait before retrying a request that met a dependency outage
DEPENDENCY_RETRY_AFTER_S = 5


def dependency_response(request: Request[Any, Any, Any], exc: BaseException) -> Response[ErrorBody] | None:
    """503 DEPENDENCY_UNAVAILABLE (with Retry-After, `param` naming it) when `exc` says Redis or
    the database is down; None for any other error."""
    down = unavailable(exc)
    if down is None:
        return None
    logger.warning("%s %s: %s is unavailable (%s)", request.method, request.url.path, down, type(exc).__name__)
    return error_response(
        503, f"{down} is unavailable; retry later", "DEPENDENCY_UNAVAILABLE", down,
        {"Retry-After": str(DEPENDENCY_RETRY_AFTER_S)},
    )  # fmt: skip


def handle_repository(request: Request[Any, Any, Any], exc: RepositoryError) -> Response[ErrorBody]:
    outage = dependency_response(request, exc)
    if outage is not None:
        return outage
    logger.exception("database error", exc_info=exc)
    return error_response(503, "database error", "DATABASE_ERROR")


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    outage = dependency_response(request, exc)
    if outage is not None:
        return outage
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal server error", "INTERNAL_ERROR")


exception_handlers: dict[Any, Any] = {
    ValidationException: handle_validation,
    NotFoundError: handle_not_found,
    RepositoryError: handle_repository,
    HTTPException: handle_http,
    Exception: handle_unexpected,
}
