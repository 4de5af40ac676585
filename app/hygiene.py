"""What no request may carry, whatever its route declares: NUL characters (PostgreSQL's text cannot hold
them) and over-long strings (an index entry has a size limit), in the path, the query and a JSON body.
Refused with FastAPI's own 422 (a RequestValidationError), before the route runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.middleware.body_limit import RequestBodyLimitMiddleware

MAX_PARAMETER_BYTES = 1_000
MAX_BODY_STRING_BYTES = 2_000  # below PostgreSQL's ~2.7 kB limit of a btree entry


def _strings(value: Any, location: tuple) -> Iterator[tuple[tuple, str]]:
    if isinstance(value, str):
        yield location, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield (*location, key), str(key)
            yield from _strings(item, (*location, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*location, index))


def _problem(location: tuple, text: str, limit: int) -> dict | None:
    if "\x00" in text:
        return {"type": "string_nul", "loc": list(location), "msg": "NUL characters are not accepted", "input": text[:80]}
    if len(text.encode()) > limit:
        return {"type": "string_too_long", "loc": list(location), "msg": f"at most {limit} bytes are accepted",
                "input": text[:80], "ctx": {"max_length": limit}}
    return None


async def refuse_malformed_text(request: Request) -> None:
    candidates = [(("path", name), value) for name, value in request.path_params.items() if isinstance(value, str)]
    candidates += [(("query", name), value) for name, value in request.query_params.multi_items()]
    candidates += [(("query",), name) for name in request.query_params]
    problems = [problem for location, text in candidates if (problem := _problem(location, text, MAX_PARAMETER_BYTES))]
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = json.loads(await request.body() or b"null")
        except (ValueError, UnicodeDecodeError):
            body = None  # the route's own validation answers
        problems += [problem for location, text in _strings(body, ("body",))
                     if (problem := _problem(location, text, MAX_BODY_STRING_BYTES))]
    if problems:
        raise RequestValidationError(problems)


class JsonTooLarge:
    """The request body limit, with its 413 in the API's one error model (Starlette's limit answers a too large
    Content-Length in plain text)."""

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = RequestBodyLimitMiddleware(app, max_body_size=max_body_bytes)
        self.body = json.dumps({"detail": f"the request body is larger than {max_body_bytes} bytes "
                                          "(the setting api_max_body_bytes)"}).encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def sending(message: dict) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 413:
                replaced = True
                headers = [(name, value) for name, value in message.get("headers", [])
                           if name.lower() not in (b"content-type", b"content-length")]
                await send({**message, "headers": [*headers, (b"content-type", b"application/json"),
                                                   (b"content-length", str(len(self.body)).encode())]})
                await send({"type": "http.response.body", "body": self.body})
            elif not (replaced and message["type"] == "http.response.body"):
                await send(message)

        await self.app(scope, receive, sending)
