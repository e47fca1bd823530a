"""The what-if page and what it reads besides /predict: GET / (the page), /web/* (its files, the plotting
library vendored beside its licence), GET /presets (the example configs) and POST /knobs (the knobs of a config).

Everything the page loads comes from here, so it works with no network beyond the service.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from features import FeatureError
from service.knobs import knobs
from service.problems import problem

WEB = Path(__file__).with_name("web")
REPO = Path(__file__).resolve().parents[1]
# the page asks again whenever it loads; its files are small, and a stale script after an upgrade is worse
NO_STORE = {"cache-control": "no-cache"}


def presets_dir() -> Path:
    """examples/configs of a checkout (or of a Bento's source), else the wheel's copy, `archcast_presets`."""
    if (REPO / "examples" / "configs").is_dir():
        return REPO / "examples" / "configs"
    spec = importlib.util.find_spec("archcast_presets")  # a folder of data, no __init__.py: a namespace package
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("no examples/configs and no archcast_presets package")
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def presets() -> list[dict]:
    return [{"name": p.stem, "config": json.loads(p.read_text())} for p in sorted(presets_dir().glob("*.json"))]


async def index(request: Request) -> Response:
    return FileResponse(WEB / "index.html", headers=NO_STORE)


async def presets_route(request: Request) -> JSONResponse:
    return JSONResponse(presets())


async def knobs_route(request: Request) -> JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        return problem(400, 'the body must be JSON: {"config": {...}}', None, "/knobs")
    config = body.get("config") if isinstance(body, Mapping) else None
    if not isinstance(config, Mapping):  # never a path: read_spec would read a file named by a string
        return problem(400, "config: expected a config.json object", "config", "/knobs")
    try:
        return JSONResponse(knobs(config))
    except FeatureError as exc:
        return problem(400, f"config.{exc}", f"config.{exc.field}", "/knobs")


class StaticWeb(StaticFiles):
    """The page's files, revalidated on every load (see NO_STORE)."""

    def file_response(self, *args, **kwargs) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(NO_STORE)
        return response


def routes() -> list[BaseRoute]:
    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/presets", presets_route, methods=["GET"]),
        Route("/knobs", knobs_route, methods=["POST"]),
        Mount("/web", StaticWeb(directory=WEB), name="web"),
    ]
