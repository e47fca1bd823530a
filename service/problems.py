"""One error shape for every 4xx the service sends: RFC 9457 problem details (application/problem+json).

{"type": "about:blank", "title": "Bad Request", "status": 400, "detail": "<what is wrong>", "field": "<path>"}
`field` is the offending input's path (e.g. `config.num_kv_heads`, `configs[1].n_layer`, `steps`), absent when
no single field is at fault. BentoML's own request-validation errors are rewritten to this shape by
`ProblemMiddleware`, and client errors are logged as one INFO line, not as a server error with a traceback.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus

from starlette.responses import JSONResponse

MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("bentoml.archcast")  # under bentoml.*: the server configures (and keeps) those loggers

PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "about:blank (the status code says it all)"},
        "title": {"type": "string", "description": "the status code's phrase, e.g. Bad Request"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "what is wrong, in words"},
        "field": {"type": "string", "description": "path of the offending input, e.g. config.n_layer"},
    },
}


def problem_body(status: int, detail: str, field: str | None = None) -> dict:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    if field:
        body["field"] = field
    return body


def problem(status: int, detail: str, field: str | None = None, path: str = "") -> JSONResponse:
    log.info("client error %d on %s: %s", status, path or "request", detail)
    return JSONResponse(problem_body(status, detail, field), status_code=status, media_type=MEDIA_TYPE)


def _path(loc) -> str | None:
    """pydantic's error location as archcast writes field paths: configs[1].n_layer, steps[0]."""
    out = ""
    for part in loc or ():
        if part == "body":
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def _from_bentoml(status: int, payload) -> dict:
    """BentoML's error bodies ({"error", "detail": [pydantic errors]}, [{"error"}], or text) as a problem."""
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        payload = payload[0]
    payload = payload if isinstance(payload, dict) else {"error": str(payload)}
    errors = (
        [e for e in payload.get("detail") or [] if isinstance(e, dict)]
        if isinstance(payload.get("detail"), list)
        else []
    )
    if errors:
        parts = [(_path(e.get("loc")), str(e.get("msg", ""))) for e in errors]
        detail = "; ".join(f"{where}: {msg}" if where else msg for where, msg in parts)
        return problem_body(status, detail, parts[0][0])
    return problem_body(status, str(payload.get("error") or HTTPStatus(status).phrase))


class ClientErrorLogFilter(logging.Filter):
    """BentoML logs a request that failed validation as `[ERROR] Exception on …` with a traceback; that is
    the client's mistake, so it becomes one INFO line. Server faults keep their level and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        from bentoml.exceptions import BentoMLException
        from pydantic import ValidationError

        exc = record.exc_info[1] if record.exc_info else None
        # only the validation of the request's input (BentoML's model is titled "Input"): a ValidationError
        # raised inside an API method would be a server fault and keeps its traceback
        client = (isinstance(exc, ValidationError) and str(exc.title).endswith("Input")) or (
            isinstance(exc, BentoMLException) and 400 <= exc.error_code.value < 500
        )
        if client:
            path = record.args[0] if record.args else "?"
            record.msg, record.args = "client error on %s: %s", (path, " ".join(str(exc).split())[:300])
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class ProblemMiddleware:
    """Rewrites BentoML's and Starlette's error bodies (4xx and 5xx, JSON or plain text: 404, 405, 500 …) to
    problem details; leaves every other response untouched."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: dict = {}

        async def rewrite(message):
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                kind = headers.get(b"content-type", b"").split(b";")[0]
                if message["status"] >= 400 and kind in (b"application/json", b"text/plain"):
                    held["start"], held["body"] = message, b""  # hold it until the body is complete
                    return
                await send(message)
            elif message["type"] == "http.response.body" and "start" in held:
                held["body"] += message.get("body", b"")
                if message.get("more_body"):
                    return
                start = held.pop("start")
                try:
                    payload = json.loads(held["body"] or b"null")
                except ValueError:
                    payload = held["body"].decode(errors="replace")
                body = json.dumps(_from_bentoml(start["status"], payload)).encode()
                headers = [(k, v) for k, v in start.get("headers", []) if k not in (b"content-type", b"content-length")]
                headers += [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})
            else:
                await send(message)

        await self.app(scope, receive, rewrite)
