"""{{ cookiecutter.project_name }}: JSON API and a small page, served by gunicorn. The API contract is in README.md."""

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

import body_cap
import json_api
import serving
from database import DatabaseBusy, healthy, problem, said
from identity import NotSignedIn, current_user, local_sign_in
from input_error import InputError
from items.api import blueprint as items_api
from security import STRICT_POLICY, security_headers

app = Flask(__name__, static_folder="static", static_url_path="/static")
# Werkzeug stops reading a chunked body there: one byte over the cap, so that json_api.capped_json sees it is over
app.config["MAX_CONTENT_LENGTH"] = body_cap.MAX_BODY_BYTES + 1
log = logging.getLogger(__name__)


def refuse(status: int, message: str, field: str | None = None) -> tuple[Any, int]:
    return jsonify(json_api.error_body(message, field)), status


@app.errorhandler(InputError)
def refused_input(error: InputError) -> tuple[Any, int]:  # every feature's refusals, and a body's wrong shape
    return refuse(error.status, str(error), error.field)


@app.errorhandler(body_cap.BodyTooLarge)
def too_large(error: body_cap.BodyTooLarge) -> tuple[Any, int]:
    return refuse(413, str(error), "body")


@app.errorhandler(NotSignedIn)
def not_signed_in(error: NotSignedIn) -> tuple[Any, int]:
    return refuse(401, str(error))


@app.errorhandler(DatabaseBusy)
def busy(error: DatabaseBusy) -> tuple[Any, int, dict[str, str]]:  # also unusable: one line, logged once
    return *refuse(503, said(error)), {"Retry-After": str(error.retry_after)}


@app.before_request
def cap_the_body() -> None:
    if body_cap.declared_too_large(request.content_length):
        raise RequestEntityTooLarge()  # refused on its Content-Length, before a byte of it is read


@app.errorhandler(HTTPException)
def http_error(error: HTTPException) -> tuple[Any, int]:  # unknown path, wrong method: the same error shape
    if isinstance(error, RequestEntityTooLarge):
        return refuse(413, body_cap.TOO_LARGE, "body")
    return refuse(error.code or 500, error.description or error.name)


@app.errorhandler(Exception)
def unexpected(error: Exception) -> tuple[Any, int]:  # the details go to the log, never to the caller
    log.exception("unexpected error in %s %s", request.method, request.path)
    return refuse(500, json_api.UNEXPECTED)


@app.before_request
def same_origin_json() -> tuple[Any, int] | None:
    refused = json_api.refusal(request.method, request.headers)
    return refuse(*refused) if refused else None


@app.before_request
def sign_in_locally() -> Response | None:  # run locally: the printed address's key becomes a cookie (identity.py)
    signed = local_sign_in(request.path, request.query_string.decode())
    return Response(status=303, headers={"Location": signed[0], "Set-Cookie": signed[1]}) if signed else None


@app.after_request
def headers(response: Response) -> Response:
    response.headers.update(security_headers(STRICT_POLICY))
    return response


@app.get("/")
def page() -> Any:
    return app.send_static_file("index.html")


@app.get("/healthz")
def healthz() -> tuple[Any, int]:
    ok = healthy()
    return jsonify(database="ok" if ok else problem()), 200 if ok else 503


@app.get("/api/me")
def me() -> Any:
    return jsonify(email=current_user(request.headers))


# One blueprint per feature, each in its own package (items/api.py); a second feature adds its line here.
app.register_blueprint(items_api)

# What gunicorn serves (app.yaml): this app on gunicorn's asyncio worker, each request read whole before a thread
# runs it, so that clients sending slowly hold no thread (serving.py).
served = serving.Buffered(app)
