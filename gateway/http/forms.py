"""Form bodies parsed without trusting them: a charset, bytes or multipart framing the parser
cannot read is the client's mistake (None, answered 400), never an exception (a 500)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDict

# What request.post() raises on a body it cannot read: an unknown charset (LookupError), bytes
# that are not in it (UnicodeDecodeError, a ValueError), broken multipart framing or headers.
_UNREADABLE = (LookupError, ValueError, HttpProcessingError, AssertionError)


async def read_form(request: web.Request) -> MultiDict[str] | None:
    """The text fields of the posted form, or None when the body cannot be read as one."""
    try:
        form = await request.post()
    except _UNREADABLE:
        return None
    return MultiDict((k, v) for k, v in form.items() if isinstance(v, str))
