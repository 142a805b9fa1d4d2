"""What the Flask and FastAPI APIs share about HTTP: the body's fields and the one error body.

Every error answer is ``{"error": "<what was wrong>", "field": "<the field>" | null}`` (README, API contract).
"""

from typing import Any


class BadRequest(ValueError):
    """A request body of the wrong shape; ``field`` names what was wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def error_body(message: str, field: str | None = None) -> dict[str, str | None]:
    return {"error": message, "field": field}


def fields(body: object, *names: str) -> list[Any]:
    """The values of exactly these fields of a JSON request body, in order."""
    if not isinstance(body, dict):
        raise BadRequest("body", "the request body must be a JSON object")
    for name in body:
        if name not in names:
            raise BadRequest(str(name), f"unknown field {name!r}")
    for name in names:
        if name not in body:
            raise BadRequest(name, f"{name} is required")
    return [body[name] for name in names]
