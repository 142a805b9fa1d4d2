"""The example feature's input rules: every input is checked here before any SQL runs.

``InvalidItem`` names the field that was wrong, so every UI can say which one; it is an ``InputError``, which
the JSON API answers in its one error body, so this feature has no error handler of its own.
"""

from input_error import InputError

MAX_TITLE = 200
MAX_ID = 2**63 - 1  # ids are PostgreSQL bigint
PAGE_SIZE = 100  # items per page of the JSON API's list (docs/api.md: API contract)
MAX_ITEMS = 1000  # items one user may keep (docs/limits.md)


class InvalidItem(InputError):
    """Input refused before it reaches the database; ``field`` names what was wrong (400)."""


class NoSuchItem(InputError):
    """The signed-in user has no item with that id (another user's item included): 404."""

    status = 404

    def __init__(self) -> None:
        super().__init__("id", "no such item")


class TooManyItems(InvalidItem):
    """The user already keeps MAX_ITEMS items: nothing was created (409)."""

    status = 409

    def __init__(self) -> None:
        super().__init__("title", f"you already have {MAX_ITEMS} items, the most one user may keep: delete some first")


def clean_title(title: object) -> str:
    if not isinstance(title, str):
        raise InvalidItem("title", "title must be a string")
    title = title.strip()
    if not title:
        raise InvalidItem("title", "title must not be empty")
    if len(title) > MAX_TITLE:
        raise InvalidItem("title", f"title must be at most {MAX_TITLE} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in title):  # NUL would not even reach PostgreSQL text
        raise InvalidItem("title", "title must not contain control characters such as NUL or line breaks")
    try:
        title.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, e.g. JSON "\ud800"
        raise InvalidItem("title", "title must be valid Unicode text") from None
    return title


def clean_done(done: object) -> bool:
    if not isinstance(done, bool):
        raise InvalidItem("done", "done must be true or false")
    return done


def clean_id(item_id: object) -> int:
    """An item id from a URL segment or a UI component: a whole number within bigint."""
    if isinstance(item_id, str) and item_id.isascii() and item_id.isdigit() and len(item_id) <= 19:
        item_id = int(item_id)
    if isinstance(item_id, bool) or not isinstance(item_id, int) or not 1 <= item_id <= MAX_ID:
        raise InvalidItem("id", f"id must be a whole number from 1 to {MAX_ID}")
    return item_id


def clean_owner(owner: object) -> str:
    if not isinstance(owner, str) or not owner.strip():
        raise InvalidItem("user", "no signed-in user")
    return owner.strip().lower()


def clean_limit(limit: object) -> int:
    """How many items a page holds: PAGE_SIZE unless the query asks for fewer (a whole number from 1)."""
    if limit is None:
        return PAGE_SIZE
    if isinstance(limit, str) and limit.isascii() and limit.isdigit() and 1 <= int(limit) <= PAGE_SIZE:
        return int(limit)
    raise InvalidItem("limit", f"limit must be a whole number from 1 to {PAGE_SIZE}")


def clean_after(after: object) -> int:
    """The cursor of a page: the id of the last item of the page before (0, the start, when there is none)."""
    if after is None:
        return 0
    try:
        return clean_id(after)
    except InvalidItem:
        raise InvalidItem("after", "after must be the id a previous page ended with") from None
