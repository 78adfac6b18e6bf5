"""What every HTTP view shares: the runtime it reads, the JSON error body, times.

The runtime is kept in the web application's state under ``RUNTIME`` (set
once by ``app.web.register``), so the view classes are plain module-level
classes and two workers in one process never share one."""
from __future__ import annotations

from datetime import datetime, timezone

from aiohttp import web as aioweb
from faust.web import View

from app.runtime import Runtime

RUNTIME: aioweb.AppKey[Runtime] = aioweb.AppKey("featurestream.runtime", Runtime)
# aiohttp's default for a path variable is [^{}/]+: an entity with a brace in
# its name (applied like any other) would answer the router's 404.  Any
# character but the separator; a percent-encoded slash (%2F) stays one entity.
FEATURES_PATH = "/features/{view}/{entity:[^/]+}"


class RuntimeView(View):
    """A Faust view that reads the worker's runtime."""

    @property
    def runtime(self) -> Runtime:
        return self.web.web_app[RUNTIME]


def error_body(error: str, detail: str) -> dict[str, str]:
    return {"error": error, "detail": detail}


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
