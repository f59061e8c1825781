"""Static assets, served by the service: Swagger UI from the swagger-ui-bundle-v2 package, Scalar
from the single file vendored under third_party/ (scripts/refresh-scalar), and the page's own
files. The docs render plugins point at these instead of their CDN defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import OpenAPIRenderPlugin, ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path

HERE = Path(__file__).parent
PAGE_DIR = HERE / "static"
SCALAR_DIR = HERE / "third_party" / "scalar"
STATIC = "/static"
SWAGGER_URL = f"{STATIC}/docs/swagger"
SCALAR_URL = f"{STATIC}/docs/scalar"
PAGE_URL = f"{STATIC}/app"
FAVICON = f'<link rel="icon" type="image/svg+xml" href="{PAGE_URL}/icon.svg">'
# Scalar's defaults fetch fonts from its CDN and report usage; neither is wanted offline
SCALAR_OPTIONS: dict[str, Any] = {"withDefaultFonts": False, "telemetry": False, "persistAuth": False}


def asset_routers() -> list[Router]:
    """One router per asset folder. The third-party files change only with their version, which
    is in the page's URLs, so browsers may keep them a day; the page's own files are revalidated."""
    day = CacheControlHeader(max_age=86400, public=True)
    return [
        create_static_files_router(SWAGGER_URL, [Path(str(swagger_ui_path))], name="swagger-assets", cache_control=day),
        create_static_files_router(SCALAR_URL, [SCALAR_DIR], name="scalar-assets", cache_control=day),
        create_static_files_router(
            PAGE_URL, [PAGE_DIR], name="page-assets", cache_control=CacheControlHeader(no_cache=True)
        ),
    ]


def docs_render_plugins() -> list[OpenAPIRenderPlugin]:
    return [
        SwaggerRenderPlugin(
            path="/",
            js_url=f"{SWAGGER_URL}/swagger-ui-bundle.js",
            css_url=f"{SWAGGER_URL}/swagger-ui.css",
            standalone_preset_js_url=f"{SWAGGER_URL}/swagger-ui-standalone-preset.js",
            favicon=FAVICON,
        ),
        ScalarRenderPlugin(
            path="/scalar",
            js_url=f"{SCALAR_URL}/standalone.js",
            css_url=f"{PAGE_URL}/scalar.css",
            options=SCALAR_OPTIONS,
            favicon=FAVICON,
        ),
    ]
