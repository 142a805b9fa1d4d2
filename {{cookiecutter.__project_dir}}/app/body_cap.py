{%- set fw = cookiecutter.framework -%}
"""What one request may send: a body over MAX_BODY_BYTES is refused, 413 with the one error body
(``{"error": ..., "field": "body"}``), before the app reads it. A declared Content-Length over the cap is refused
unread; a chunked body is counted as it arrives and refused once it is over (README: Limits).
"""
{%- if fw in ("fastapi", "gradio") %}

import json
from typing import Any
{%- endif %}
{%- if fw == "dash" %}

MAX_BODY_BYTES = 1024 * 1024
"""The largest callback body the app reads. A change callback carries the state of every row's checkbox and
Delete button (about 160 bytes a row, some 160 KB for a user at the item cap); 1 MiB leaves room for that, and a
bigger body is refused before Flask parses it (parsing a 100 MB one grows a worker from 86 to 289 MB)."""
{%- elif fw == "gradio" %}

MAX_BODY_BYTES = 16 * 1024
"""The largest request body the app reads. Gradio's calls carry one event's inputs (a 200-character title at most:
well under 2 KB); the UI takes no files (``max_file_size=1``), so nothing legitimate comes near 16 KiB."""
{%- else %}

MAX_BODY_BYTES = 16 * 1024
"""The largest request body the app reads. The largest valid one is about 1.3 KB (a 200-character title written as
\\uXXXX escapes, and "done"); 16 KiB leaves room for a second feature's fields, and a bigger body is refused (413)
before it is read or parsed (parsing a 60 MB body grows a worker from 70 to 190 MB)."""
{%- endif %}
TOO_LARGE = f"the request body must be at most {MAX_BODY_BYTES} bytes"


class BodyTooLarge(Exception):
    """A body without Content-Length (chunked) grew past MAX_BODY_BYTES while it was being read: 413."""
{%- if fw in ("flask", "dash") %}


def declared_too_large(content_length: int | None) -> bool:
    """A body whose Content-Length is over the cap: refused before a byte of it is read. (A chunked body is
    stopped by Werkzeug's MAX_CONTENT_LENGTH as it is read.)"""
    return (content_length or 0) > MAX_BODY_BYTES
{%- if fw == "dash" %}


def over(body: bytes) -> bool:
    return len(body) > MAX_BODY_BYTES
{%- endif %}
{%- else %}


class BodyCap:
    """ASGI middleware: a Content-Length over MAX_BODY_BYTES is answered 413 before a byte of the body is read; a
    chunked body is counted as it arrives and, once it is over, the app's reading stops (BodyTooLarge) and
    whatever the app answers to that becomes the 413 (a framework may turn a failed read into its own 400)."""

    BODY = json.dumps({"error": TOO_LARGE, "field": "body"}).encode()
    HEADERS = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
        (b"connection", b"close"),  # the rest of the body is never read
    ]

    def __init__(self, app: Any) -> None:
        self.app = app

    async def refuse(self, send: Any) -> None:
        await send({"type": "http.response.start", "status": 413, "headers": self.HEADERS})
        await send({"type": "http.response.body", "body": self.BODY})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            return await self.refuse(send)
        seen, over, started, refused = 0, False, False, False

        async def counted() -> dict[str, Any]:
            nonlocal seen, over
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY_BYTES:
                over = True
                raise BodyTooLarge(TOO_LARGE)
            return message

        async def answer(message: dict[str, Any]) -> None:
            nonlocal started, refused
            if over and not started:  # the app's answer to a body it could not read whole: the refusal instead
                started = refused = True
                await self.refuse(send)
            elif not refused:
                started = True
                await send(message)

        try:
            await self.app(scope, counted, answer)
        except Exception:
            if not over:
                raise
            if not started:  # the body's refusal, not an error of the app: answered, and no traceback
                await self.refuse(send)
{%- endif %}
