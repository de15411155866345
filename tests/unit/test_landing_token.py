"""What the landing page accepts as a Marketplace purchase token before it goes into an HTTP header."""

from __future__ import annotations

import pytest

from core.errors import BadRequest
from core.subscriptions.landing import MAX_TOKEN_LENGTH, landing_token


def test_a_plus_read_as_a_space_is_put_back() -> None:
    assert landing_token("ab c+d/e f==") == "ab+c+d/e+f=="


def test_a_token_ending_in_plus_keeps_it() -> None:
    assert landing_token("abc ") == "abc+"


@pytest.mark.parametrize(
    "token",
    ["é", "ａｂｃ", "１２３", "a\u00a0b", "a\nb", "a=b", "abc===", "<script>", "💩", "x" * (MAX_TOKEN_LENGTH + 1)],
)
def test_anything_a_base64_token_never_holds_is_refused(token: str) -> None:
    with pytest.raises(BadRequest):
        landing_token(token)
