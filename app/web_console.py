"""The live console: ``GET /`` (a page), its script and style, and ``GET /console/data``.

The page is plain HTML, CSS and JavaScript in ``app/console/``, served as
they are (no build step, no CDN, no library: the charts are SVG drawn by
the script).  It polls ``/console/data`` (``app.console_figures``), ``/views``
and ``/models``, and looks features up with ``GET /features/{view}/{entity}``:
the routes any client has, under the same token rules (a read token, when
reads need one, is asked for on the page and kept in the tab's session).
"""
from __future__ import annotations

from importlib.resources import files

import msgspec
from faust.web import Request, Response

from app.console_figures import Visible, figures
from app.tokens import READ
from app.web_auth import admit, sees_model, sees_source
from app.web_common import RuntimeView
from tables.model_spec import model_specs

PAGE_DIR = files("app") / "console"
# Read once: the files ship with the package and never change under a running worker.
PAGE = (PAGE_DIR / "index.html").read_text(encoding="utf-8")
SCRIPT = (PAGE_DIR / "console.js").read_text(encoding="utf-8")
STYLE = (PAGE_DIR / "console.css").read_text(encoding="utf-8")
DATA_PATH = "/console/data"


class ConsolePage(RuntimeView):
    async def get(self, request: Request) -> Response:
        return self.html(PAGE)


class ConsoleScript(RuntimeView):
    async def get(self, request: Request) -> Response:
        return self.text(SCRIPT, content_type="text/javascript")


class ConsoleStyle(RuntimeView):
    async def get(self, request: Request) -> Response:
        return self.text(STYLE, content_type="text/css")


class ConsoleData(RuntimeView):
    async def get(self, request: Request) -> Response:
        decision, denied = admit(self, request, READ)
        if denied is not None:
            return denied
        runtime = self.runtime
        specs = model_specs(runtime.definitions)

        def model(name: str) -> bool:
            spec = specs.get(name)
            return sees_model(runtime, decision, spec) if spec else decision.sees(runtime.tokens, name)

        visible = Visible(lambda name: sees_source(runtime, decision, name), model, decision.sees(runtime.tokens))
        data = figures(runtime.metrics.registry, runtime.console_history, runtime.console_feed,
                       str(runtime.app.conf.canonical_url), runtime.sources, visible)
        return self.bytes(msgspec.json.encode(data), content_type="application/json")
