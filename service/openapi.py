"""OpenAPI for routes that validate their raw body themselves (for speed) instead of through FastAPI.

Such routes declare their body with `json_body(Model)`; `install_openapi` adds the models to the components, so
the published schema is the same as if FastAPI had parsed the body.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

_REF = "#/components/schemas/{model}"


def json_body(model: type[BaseModel], description: str) -> dict[str, Any]:
    """`openapi_extra` of a route whose JSON body is `model`."""
    content = {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}}
    return {"requestBody": {"required": True, "description": description, "content": content}}


def install_openapi(app: FastAPI, body_models: Sequence[type[BaseModel]]) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in body_models:
                model_schema = model.model_json_schema(ref_template=_REF)
                for name, definition in model_schema.pop("$defs", {}).items():
                    components.setdefault(name, definition)
                components[model.__name__] = model_schema
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
