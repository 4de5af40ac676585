"""Reading the API's answers in tests: the body of a success, the message of a refusal."""

from __future__ import annotations


def ok(response, status=200):
    assert response.status_code == status, response.text
    return response.json()


def refused(response, status: int, *words: str) -> str:
    """The refusal's message, checked to have the status and to name each of `words`."""
    assert response.status_code == status, response.text
    detail = str(response.json()["detail"])
    for word in words:
        assert word in detail, detail
    return detail
