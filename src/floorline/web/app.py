"""The floorline web app: API routers from their own modules plus static pages shipped in the package.

Capabilities plug in by adding a module to ROUTERS that exposes `router` (a fastapi.APIRouter); a module
that does not exist yet is skipped, so each page can be built on its own. Pages are plain HTML/JS/CSS
under static/: no CDN, no build step, works offline.
"""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

ROUTERS = ("floorline.web.machine_api", "floorline.web.economics_api")
STATIC = Path(__file__).parent / "static"


def create_app() -> FastAPI:
    # docs_url/redoc_url off: Swagger UI would pull its assets from a CDN, and this app runs offline.
    app = FastAPI(title="floorline", docs_url=None, redoc_url=None)
    for name in ROUTERS:
        if find_spec(name) is not None:
            app.include_router(import_module(name).router)
    # Mounted last so API routes win; html=True serves index.html at "/".
    app.mount("/", StaticFiles(directory=STATIC, html=True), name="static")
    return app


app = create_app()
