"""One error format for every endpoint: `{"error": {"code": ..., "message": ...}}`."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from api.headers import plain_headers

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    code: str
    message: str
    problems: list[dict[str, str]] | None = None


class ErrorBody(BaseModel):
    """Every error of the API has this shape."""

    error: ErrorDetail


_MEANING = {
    400: "malformed parameter: a bad time, date, range or character",
    401: "not logged in, or the view is not public",
    403: "role not allowed, or the CSRF token is missing",
    404: "not found",
    409: "conflicts with the current state",
    413: "too much asked or sent: narrow the range, widen the bucket, or send a smaller body",
    429: "too many failed attempts: retry after the seconds in Retry-After",
    503: "a service the endpoint needs is unavailable",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses, all in the one error format."""
    return {status: {"model": ErrorBody, "description": _MEANING[status]} for status in statuses}


class BodyTooLarge(HTTPException):
    """Raised by api.intake's `receive` once an endpoint reads a body past the cap.

    An HTTPException, because FastAPI turns any other error while reading a body into a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")
        self.limit = limit


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def _body(code: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": {"code": code, "message": message, **extra}}


def _document_everywhere(app: FastAPI) -> None:
    """Every operation may answer 400 (a control character in the path or query, api.intake) and,
    when it takes a body, 413 (too large): say so in the OpenAPI document, and that every error
    is the one JSON error body."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = plain()
        body_ref = {"$ref": "#/components/schemas/ErrorBody"}
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("ErrorDetail", ErrorDetail.model_json_schema())
        schemas["ErrorBody"] = {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"$ref": "#/components/schemas/ErrorDetail"}},
        }
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.setdefault("responses", {})
                wanted = ["400", "413"] if "requestBody" in operation else ["400"]
                for status in wanted:
                    responses.setdefault(status, {"description": _MEANING[int(status)]})
                for status, response in responses.items():
                    # Errors are JSON, whatever the operation's own media type (e.g. /metrics).
                    own = response.get("content", {}).get("application/json", {}).get("schema", {})
                    if "properties" in own:
                        continue  # a body of the operation's own (the health check's 503)
                    if status.isdigit() and int(status) >= 400 and status != "422":
                        response["content"] = {"application/json": {"schema": body_ref}}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    _document_everywhere(app)

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return JSONResponse(_body(exc.code, exc.message), status_code=exc.status, headers=exc.headers)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return JSONResponse(
            _body("http_error", str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [
            {"location": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()
        ]
        return JSONResponse(_body("invalid_request", "invalid request", problems=problems), status_code=422)

    async def body_too_large(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, BodyTooLarge)
        return JSONResponse(
            _body("body_too_large", str(exc.detail)), status_code=413, headers={"Connection": "close"}
        )

    async def data_error(request: Request, exc: Exception) -> JSONResponse:
        # A value PostgreSQL cannot take (a NUL in a text, a time out of its range) that a check
        # before the query missed: still the caller's error, never a 500.
        log.warning("%s %s: value refused by the database: %s", request.method, request.url.path, exc)
        return JSONResponse(_body("bad_value", "a value in the request cannot be stored or compared"), 400)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse(
            _body("internal_error", "the server failed on this request"),
            status_code=500,
            headers=plain_headers(),
        )

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(BodyTooLarge, body_too_large)
    app.add_exception_handler(psycopg.DataError, data_error)
    app.add_exception_handler(Exception, unexpected)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
