"""GET /: the transcription page for people who do not write code (static HTML, CSS and one
script, no build step). What the page needs to know of this deployment is written into it."""

from __future__ import annotations

import functools
import html
from importlib.metadata import version

import msgspec
from litestar import Response, get
from litestar.enums import MediaType
from whisperx.utils import LANGUAGES

from whisperx_api.pipeline.audio import ALLOWED_EXTENSIONS
from whisperx_api.settings import Settings
from whisperx_api.web.assets import PAGE_DIR, PAGE_URL

# The page's own files only: no inline script (its settings are a JSON data block), no other origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class PageConfig(msgspec.Struct):
    """What the page's script reads from the page (element #config)."""

    version: str
    auth: bool
    max_upload_bytes: int | None
    extensions: list[str]
    default_model: str
    default_language: str | None
    languages: dict[str, str]


def page_config(settings: Settings) -> PageConfig:
    return PageConfig(
        version=version("whisperx-api"),
        auth=settings.auth.enabled,
        max_upload_bytes=settings.max_upload_bytes or None,
        extensions=sorted(ALLOWED_EXTENSIONS),
        default_model=settings.whisper_model,
        default_language=settings.default_lang or None,
        languages=dict(sorted(LANGUAGES.items(), key=lambda item: item[1])),
    )


@functools.cache
def _template() -> str:
    return (PAGE_DIR / "index.html").read_text(encoding="utf-8")


def render_page(settings: Settings) -> bytes:
    # JSON in a <script> element is not HTML-decoded: only "</script>" could end it early
    config = msgspec.json.encode(page_config(settings)).decode().replace("<", "\\u003c")
    template = _template()
    # the version in asset URLs: a new release is fetched again, whatever the browser cached
    return (
        template.replace("{{assets}}", PAGE_URL)
        .replace("{{version}}", html.escape(version("whisperx-api")))
        .replace("{{config}}", config)
        .encode()
    )


@get("/", include_in_schema=False, media_type=MediaType.HTML, sync_to_thread=False)
def transcription_page(settings: Settings) -> Response[bytes]:
    return Response(
        render_page(settings),
        media_type=MediaType.HTML,
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"},
    )
