"""The service's OpenAPI document and docs page, as archcast's own contract.

BentoML generates /docs.json from the API methods' input types: its info block is BentoML's boilerplate
(version "None"), the 200 bodies are bare objects, the 4xx bodies are not what we send, and GET /metadata
(a plain Starlette route) is missing. `describe` completes that document; `DocsMiddleware` serves it at
/docs.json and a Swagger page at /docs that loads only the service's own files (the what-if page has /) —
BentoML's own page also embeds a third-party tag manager.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from service.prediction import WARNING_CODES
from service.problems import MEDIA_TYPE, PROBLEM_SCHEMA

NUMBER_OR_NULL = {"type": ["number", "null"]}
WARNING = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"enum": list(WARNING_CODES)},
        "feature": {"type": ["string", "null"], "description": "the feature, input or metric concerned"},
        "value": {
            "description": (
                "the offending value: a number, a family name, a list of layers, or (scale_extrapolated) "
                "metric → log shift at the last step"
            )
        },
        "range": {"type": ["array", "null"], "items": NUMBER_OR_NULL, "description": "[low, high]; null: open"},
        "message": {"type": "string"},
    },
}
METRIC_PREDICTION = {
    "type": "object",
    "required": ["params", "derived", "curve"],
    "properties": {
        "params": {
            "type": "object",
            "description": "the emergence curve f(t) = A·exp(−λx)·ln(x) + K, x = γt + t0, closest to the prediction "
            "(least squares at the reference steps); the served curve is f times a correction that takes it "
            "through the prediction there, so the two differ most over the first steps",
            "properties": {k: NUMBER_OR_NULL for k in ("A", "lam", "gamma", "t0", "K")},
        },
        "derived": {
            "type": "object",
            "properties": {
                "steady_state": {
                    **NUMBER_OR_NULL,
                    "description": "the fitted curve's limit as steps grow; where the value at the last step is "
                    "still more than 10 % from it, where the layer settles is an extrapolation past the steps",
                },
                "extremum_kind": {
                    "enum": ["peak", "dip", "none"],
                    "description": "the emergence curve's extremum (params): peak when A > 0, dip when A < 0",
                },
                "peak_step": NUMBER_OR_NULL,
                "peak_observable": {"type": "boolean"},
                "peak_value": {
                    **NUMBER_OR_NULL,
                    "description": "the served curve at the emergence curve's extremum step (not necessarily the "
                    "served curve's maximum)",
                },
                "final_value": NUMBER_OR_NULL,
            },
        },
        "curve": {
            "type": "array",
            "items": NUMBER_OR_NULL,
            "description": "the metric at each requested step (steady state, peak and final values are read "
            "off this curve; the extremum's step and kind are the emergence curve's)",
        },
        "interval": {
            "type": "object",
            "description": "central 80 % band of the curve, where the model gives one",
            "properties": {side: {"type": "array", "items": NUMBER_OR_NULL} for side in ("low", "high")},
        },
    },
}
PREDICTION = {
    "type": "object",
    "required": ["model_version", "model_type", "n_layers", "steps", "warnings", "summary", "layers"],
    "properties": {
        "model_version": {"type": "string"},
        "model_type": {"type": "string"},
        "n_layers": {"type": "integer", "minimum": 1},
        "steps": {"type": "array", "items": {"type": "number"}},
        "tokens": {
            "type": ["array", "null"],
            "items": NUMBER_OR_NULL,
            "description": "tokens seen by each step under the reference recipe (steps × tokens per step)",
        },
        "recipe": {
            "type": "object",
            "description": "the training recipe the steps refer to (schedule, batch, sequence length, tokens per "
            "step): a predicted curve is only meaningful for it",
        },
        "recipe_requested": {
            "type": "object",
            "description": "the request's recipe over the trained one's defaults, where the request gave one; a "
            "field outside what the training runs covered gets a recipe_out_of_range warning",
        },
        "mechanism": {
            "type": ["object", "null"],
            "description": "where the BOS massive-activation mechanism forms at the end of the recipe",
            "properties": {
                "onset_layer": {
                    "type": ["integer", "null"],
                    "description": "the layer most likely to be the measured first layer that shows it (it can "
                    "differ from first_layer_with_mechanism)",
                },
                "first_layer_with_mechanism": {
                    "type": ["integer", "null"],
                    "description": "the first layer whose predicted margin passes the rule (has_mechanism)",
                },
                "onset_chance": {
                    **NUMBER_OR_NULL,
                    "description": "the chance that onset_layer (or, where it is null, no layer) is the measured "
                    "onset, from the margin's held-out error (null for an older model)",
                },
                "definition": {"type": "string"},
                "layers": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["layer", "bos_share", "bos_margin", "has_mechanism", "probability", "onset_step"],
                        "properties": {
                            "layer": {"type": "integer", "minimum": 1},
                            "bos_share": NUMBER_OR_NULL,
                            "bos_margin": NUMBER_OR_NULL,
                            "has_mechanism": {"type": "boolean"},
                            "probability": {**NUMBER_OR_NULL, "description": "chance the layer shows it"},
                            "intervals": {
                                "type": "object",
                                "description": "central 80 % band [low, high] of bos_share, bos_margin and "
                                "onset_step, calibrated on held-out designs (empty for an older model)",
                                "additionalProperties": {"type": "array", "items": NUMBER_OR_NULL},
                            },
                            "onset_step": NUMBER_OR_NULL,
                        },
                    },
                },
            },
        },
        "warnings": {"type": "array", "items": {"$ref": "#/components/schemas/Warning"}},
        "summary": {
            "type": "array",
            "description": "one sentence per metric: where and when it moves, where it settles, peaks or dips",
            "items": {
                "type": "object",
                "required": ["metric", "text"],
                "properties": {"metric": {"type": "string"}, "text": {"type": "string"}},
            },
        },
        "layers": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["layer", "metrics"],
                "properties": {
                    "layer": {"type": "integer", "minimum": 1},
                    "metrics": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Metric"}},
                },
            },
        },
    },
}
METADATA = {
    "type": "object",
    "required": ["manifest", "model_card"],
    "properties": {
        "manifest": {"type": "object", "description": "the served model's manifest (version, targets, domain)"},
        "model_card": {"type": "string", "description": "MODEL_CARD.md of the served model"},
    },
}


SWEEP = {
    "type": "object",
    "required": ["model_version", "quantity", "lowest_first", "designs", "skipped"],
    "properties": {
        "model_version": {"type": "string"},
        "quantity": {
            "type": "string",
            "description": "what the designs are ranked by, e.g. final ma_ratio (max over "
            "layers); each design carries it under this name",
        },  # fmt: skip
        "lowest_first": {"type": "boolean"},
        "designs": {
            "type": "array",
            "description": "best first: rank, design (its place in the cross product or draw), the varied knobs' "
            "values, n_params, n_layers, the quantity, onset_layer (null: none predicted) and n_warnings",
            "items": {"type": "object", "required": ["rank", "design", "n_params", "n_layers"]},
        },
        "skipped": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["values", "reason"],
                "properties": {"values": {"type": "object"}, "reason": {"type": "string"}},
            },  # fmt: skip
        },
    },
}


def _json(ref: str, media_type: str = "application/json") -> dict:
    return {media_type: {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _problems(*statuses: int) -> dict:
    reasons = {400: "Invalid input: `field` names it", 413: "Request body over 1 MB", 500: "Server fault"}
    return {str(s): {"description": reasons[s], "content": _json("Problem", MEDIA_TYPE)} for s in statuses}


def describe(spec: dict, model_version: str, metrics_served: bool = False) -> dict:
    """BentoML's generated document, completed into archcast's contract. BentoML lists its /metrics route
    whether or not it serves it: kept only where it is served (ARCHCAST_METRICS=1)."""
    spec = copy.deepcopy(spec)
    if not metrics_served:
        spec.get("paths", {}).pop("/metrics", None)
    try:
        archcast_version = package_version("archcast")
    except PackageNotFoundError:
        archcast_version = "0+unknown"
    spec["info"] = {
        "title": "archcast",
        "version": f"{archcast_version} (model {model_version})",
        "description": (
            "Predicts, from a transformer's Hugging Face `config.json`, how its massive activations and layer "
            "linearity develop over training: per layer, the five parameters of the emergence curve, derived "
            "values and the curve at the requested steps. Every 4xx is an RFC 9457 problem "
            "(`application/problem+json`). Predictions outside the training domain carry warnings."
        ),
    }
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in ("InvalidArgument", "NotFound", "InternalServerError"):
        schemas.pop(name, None)
    schemas.update(Warning=WARNING, Metric=METRIC_PREDICTION, Prediction=PREDICTION, Metadata=METADATA,
                   Problem=PROBLEM_SCHEMA, Sweep=SWEEP)  # fmt: skip
    paths = spec["paths"]
    paths["/predict"]["post"]["responses"] = {
        "200": {"description": "The prediction", "content": _json("Prediction")},
        **_problems(400, 413, 500),
    }
    predictions = {"type": "array", "items": {"$ref": "#/components/schemas/Prediction"}}
    paths["/predict_batch"]["post"]["responses"] = {
        "200": {
            "description": "One prediction per config, in order",
            "content": {"application/json": {"schema": predictions}},
        },
        **_problems(400, 413, 500),
    }
    if "/sweep" in paths:
        paths["/sweep"]["post"]["responses"] = {
            "200": {"description": "The designs ranked, then the skipped combinations", "content": _json("Sweep")},
            **_problems(400, 413, 500),
        }
    paths["/metadata"] = {
        "get": {
            "summary": "The served model's manifest and model card",
            "operationId": "archcast__metadata",
            "tags": ["Service APIs"],
            "responses": {"200": {"description": "Manifest and model card", "content": _json("Metadata")}},
        }
    }
    return spec


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>archcast API</title>
<link rel="stylesheet" href="./static_content/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="./static_content/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "./docs.json", dom_id: "#swagger-ui"});</script>
</body></html>
"""


class DocsMiddleware:
    """GET /docs.json: the completed document; GET /docs: a Swagger page made of local files only."""

    def __init__(self, app, document: Callable[[], dict]):
        self.app, self.document, self.cached = app, document, None

    async def __call__(self, scope, receive, send):
        ours = scope["type"] == "http" and scope["method"] in ("GET", "HEAD")
        if not ours or scope["path"] not in ("/docs", "/docs.json"):
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/docs.json":
            if self.cached is None:
                self.cached = json.dumps(self.document()).encode()
            body, kind = self.cached, b"application/json"
        else:
            body, kind = DOCS_PAGE.encode(), b"text/html; charset=utf-8"
        headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
