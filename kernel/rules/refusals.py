"""Services: load state through a session, call the pure rules, commit once. The API calls these."""


class NotFound(LookupError):
    """Something named in the request does not exist (HTTP 404)."""


class Conflict(ValueError):
    """The request contradicts what is stored (HTTP 409)."""
