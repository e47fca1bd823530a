"""The BentoML service: POST /predict, POST /predict_batch, POST /sweep, GET /metadata, the what-if page at /
(service/page.py) and the API docs at /docs (plus BentoML's health routes)."""

from __future__ import annotations

import gc
import logging
import os
from typing import Any

import bentoml
import orjson
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from threadpoolctl import threadpool_limits

from features import ArchcastError, ArchSpec, FeatureError, read_spec
from service import page
from service.knobs import KNOBS
from service.openapi import DocsMiddleware, describe
from service.predictor import Predictor, cpu_threads
from service.problems import ClientErrorLogFilter, ProblemMiddleware, problem
from service.sweep import sweep_response

MAX_BODY_BYTES = 1_000_000


class FastJSON(JSONResponse):
    """JSON rendered by orjson: the standard library's encoder took 1.0 ms for a 26 KB prediction body, a third
    of the prediction itself. NaN and ±inf render as null, as JSON needs."""

    def render(self, content) -> bytes:
        return orjson.dumps(content)


MAX_BATCH = 64
MAX_SWEEP = 5_000  # designs one /sweep predicts (a few seconds on one worker); more: `archcast sweep`
WORKERS = cpu_threads()  # one worker process per usable core
# BentoML's per-request access log costs ~2 ms a request (about half of one); on when ARCHCAST_ACCESS_LOG=1
ACCESS_LOG = os.environ.get("ARCHCAST_ACCESS_LOG", "0") == "1"
# ... and its Prometheus metrics at /metrics (a histogram and counters written to shared memory on every API
# call) ~0.2 ms, a tenth of a /predict: on when ARCHCAST_METRICS=1
METRICS = os.environ.get("ARCHCAST_METRICS", "0") == "1"
# ... and its OpenTelemetry spans (a server span and one per message sent, exported nowhere unless an exporter is
# configured) ~0.25 ms: every URL excluded unless ARCHCAST_TRACING=1
TRACING = {} if os.environ.get("ARCHCAST_TRACING", "0") == "1" else {"tracing": {"excluded_urls": [".*"]}}

_predictor: Predictor | None = None


def shared_predictor() -> Predictor:
    """One predictor per worker process, shared by the API methods and the metadata route.

    One onnxruntime thread each: the service runs a worker per core, and a request is a few
    dozen rows, too small for intra-op threads to pay off.
    """
    global _predictor
    if _predictor is None:
        # and one BLAS thread: the projection's small products would otherwise start a thread pool per worker
        threadpool_limits(1, user_api="blas")
        _predictor = Predictor(threads=1)
        # what the worker has built so far (BentoML, pydantic, onnx: ~140k objects) lives as long as the
        # worker: taken out of the collector's view, each collection a response's garbage triggers is cheap
        gc.collect()  # what loading left as cyclic garbage goes first: frozen objects are never collected
        gc.freeze()
    return _predictor


async def metadata(request: Request) -> JSONResponse:
    predictor = shared_predictor()
    card = predictor.folder / "MODEL_CARD.md"
    return FastJSON({"manifest": predictor.manifest, "model_card": card.read_text() if card.exists() else ""})


class BodyLimit:
    """Refuse request bodies over MAX_BODY_BYTES with 413, counting the bytes received (a chunked body has no
    Content-Length to trust). The body is read here, at most MAX_BODY_BYTES of it, and replayed to the app."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")

        def too_long():
            return problem(413, f"request body over {MAX_BODY_BYTES} bytes", path=scope["path"])

        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            await too_long()(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > MAX_BODY_BYTES:
                # the rest of the body is never read: tell the client this connection ends here
                refusal = too_long()
                refusal.headers["connection"] = "close"
                await refusal(scope, receive, send)
                return
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: wait for the disconnect as the app expects
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _predict(config: dict[str, Any], steps, metrics, recipe=None, where: str = "config") -> dict[str, Any]:
    """The prediction as JSON; a bad config's error names its path in the request (config.n_layer,
    configs[1].n_layer), a bad steps, metrics or recipe field its name (recipe.lr)."""
    try:
        return shared_predictor().predict(config, steps, metrics, recipe).to_json()
    except FeatureError as exc:
        raise exc.within(where) from None


def _spec(config: Any, where: str) -> ArchSpec:
    """A request's config read, its error naming its path in the request (configs[1].n_layer)."""
    try:
        return read_spec(config)
    except FeatureError as exc:
        raise exc.within(where) from None


Steps = list[float] | None
Metrics = list[str] | None
Recipe = dict[str, Any] | None
RECIPE_HELP = (
    "How the model will be trained: any of steps, batch_size, seq_len, lr, weight_decay, bos, warmup, schedule "
    "(default: the recipe the served model was trained on)"
)


@bentoml.asgi_app(Starlette(routes=[Route("/metadata", metadata, methods=["GET"]), *page.routes()]), path="/")
@bentoml.service(
    name="archcast",
    workers=WORKERS,
    traffic={"timeout": 30},
    http={"port": 3000},
    logging={"access": {"enabled": ACCESS_LOG}},
    metrics={"enabled": METRICS},
    **TRACING,
)
class Archcast:
    def __init__(self) -> None:
        self.predictor = shared_predictor()

    # The API methods are async: a request is ~1 ms of CPU-bound work, which a thread hop would only
    # lengthen. They return a ready JSONResponse (the declared types still document the API): the body
    # is plain floats and strings already, and BentoML's generic pydantic serialisation of `Any` would
    # cost more than the prediction itself.
    @bentoml.api(route="/predict")
    async def predict(
        self,
        config: dict[str, Any] = Field(description="A Hugging Face config.json object"),
        steps: Steps = Field(default=None, description="Training steps at which to evaluate the curves"),
        metrics: Metrics = Field(default=None, description="Metrics to predict (default: all the model has)"),
        recipe: Recipe = Field(default=None, description=RECIPE_HELP),
    ) -> dict[str, Any]:
        """Per-layer emergence-curve parameters, derived quantities and curves for one config."""
        try:
            return FastJSON(_predict(config, steps, metrics, recipe))
        except ArchcastError as exc:  # answered here: raising would log a client's mistake as a server error
            return problem(400, str(exc), exc.field, "/predict")

    @bentoml.api(route="/predict_batch")
    async def predict_batch(
        self,
        configs: list[dict[str, Any]] = Field(description=f"Up to {MAX_BATCH} config.json objects"),
        steps: Steps = None,
        metrics: Metrics = None,
        recipe: Recipe = Field(default=None, description=RECIPE_HELP),
    ) -> list[dict[str, Any]]:
        """The same as /predict for several configs; an invalid one fails the request, naming its index."""
        if not configs or len(configs) > MAX_BATCH:
            detail = f"configs: expected 1 to {MAX_BATCH} configs, got {len(configs)}"
            return problem(400, detail, "configs", "/predict_batch")
        try:
            predictor = shared_predictor()
            request = predictor.check_request(steps, metrics, recipe)
            batch = predictor.predict_checked([_spec(c, f"configs[{i}]") for i, c in enumerate(configs)], request)
            return FastJSON([batch.prediction(i).to_json() for i in range(len(batch))])
        except ArchcastError as exc:
            return problem(400, str(exc), exc.field, "/predict_batch")

    @bentoml.api(route="/sweep")
    async def sweep(
        self,
        base: dict[str, Any] = Field(description="The base config.json object"),
        vary: dict[str, list[Any] | str] = Field(
            description="knob → its values: a list, or START:STOP:STEP (STOP included) for a whole-number knob. "
            "Knobs as the what-if page names them: " + ", ".join(k.name for k in KNOBS)
        ),
        rank_by: str = Field(
            default="final:ma_ratio",
            description="final:METRIC or peak:METRIC, at @LAYER or over the layers (@max, @min, @mean); or onset_layer",
        ),
        lowest_first: bool = Field(default=False, description="rank the smallest values first"),
        samples: int | None = Field(default=None, description="draw this many designs at random instead"),
        seed: int = Field(default=0, description="seed of the samples draw"),
        steps: Steps = None,
        recipe: Recipe = Field(default=None, description=RECIPE_HELP),
    ) -> dict[str, Any]:
        """Vary knobs over a base config, predict every design (at most 5,000) and rank them by one quantity:
        the designs' knob values, parameter counts and the quantity, best first, then what was skipped and
        why."""
        try:
            answer = sweep_response(shared_predictor(), base, vary, rank_by, lowest_first, samples, seed, steps,
                                    recipe, MAX_SWEEP)  # fmt: skip
            return FastJSON(answer)
        except ArchcastError as exc:
            return problem(400, str(exc), exc.field, "/sweep")


Archcast.add_asgi_middleware(BodyLimit)
Archcast.add_asgi_middleware(ProblemMiddleware)
Archcast.add_asgi_middleware(
    DocsMiddleware, document=lambda: describe(Archcast.openapi_spec.asdict(), shared_predictor().version, METRICS)
)
logging.getLogger("bentoml._internal.server.http_app").addFilter(ClientErrorLogFilter())
