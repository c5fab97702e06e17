"""Routes on the model catalog: GET /v1/models in OpenAI's shape, with prices and lifecycles."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from imagejobs.domain import clock, pricing
from imagejobs.edge.api.common import _answers, _tenant
from imagejobs.edge.httpapi import (
    ApiError,
)

router = Router()


@router.get(
    "/v1/models",
    summary="The models this stack serves, with their prices (OpenAI's model list)",
    responses=_answers(200, "the models", model=None),
)
def list_models() -> dict[str, Any]:
    _tenant()
    return {"object": "list", "data": pricing.model_views(clock.today())}


@router.get(
    "/v1/models/<vendor>/<name>",
    summary="One model, e.g. openai/gpt-image-1",
    responses=_answers(200, "the model", 404, model=None),
)
def get_vendor_model(vendor: str, name: str) -> Response[dict[str, Any]]:
    return _model(f"{vendor}/{name}")


@router.get(
    "/v1/models/<name>",
    summary="One model by its short name, e.g. gpt-image-1",
    responses=_answers(200, "the model", 404, model=None),
)
def get_model(name: str) -> Response[dict[str, Any]]:
    return _model(name)


def _model(name: str) -> Response[dict[str, Any]]:
    _tenant()
    today = clock.today()
    try:
        entry = pricing.servable(unquote(name), today)
    except pricing.UnknownModel:
        raise ApiError(404, f"The model '{name}' does not exist here.", param="model", code="model_not_found") from None
    except pricing.ModelShutDown as exc:
        instead = f"; use {exc.replacement} instead" if exc.replacement else ""
        message = f"The model '{name}' was shut down on {exc.shutdown}{instead}."
        raise ApiError(404, message, param="model", code="model_not_found") from None
    return Response(
        status_code=200,
        content_type="application/json",
        body=pricing.model_view(entry),
        headers=pricing.deprecation_headers(entry, today),
    )
