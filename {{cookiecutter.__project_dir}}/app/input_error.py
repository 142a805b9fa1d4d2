"""The one error a feature raises for a request it refuses: every UI shows its message, and the JSON API (Flask,
FastAPI) answers it once, for every feature, as ``{"error": <message>, "field": <field>}`` with its ``status``.

A feature subclasses it (``items.rules.InvalidItem``) or raises it as it is; it adds no error handler.
"""


class InputError(ValueError):
    """Refused before any SQL runs, or about a row the signed-in user does not have: nothing changed.

    ``field`` names what was wrong; ``status`` is the JSON API's answer (400 unless the class or caller says).
    """

    status = 400

    def __init__(self, field: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        if status is not None:
            self.status = status
