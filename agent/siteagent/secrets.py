"""Keep credentials out of output and logs."""

from __future__ import annotations

import re

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from typing import Any

# A word (a run of characters up to whitespace, a quote or <>): it starts where the previous
# one ended (the lookbehind) and is taken possessively, so each character is scanned once and
# masking is linear in the text however hostile it is (a 1 MB value, "http://" * 100000).
# (compiled on first use: most texts a rank masks hold no URL with userinfo)
_WORD = r"(?<![^\s'\"<>])[^\s'\"<>]++"
# RFC 3986 scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), spelt out: `string` costs a
# rank a millisecond to import (its Template class compiles a pattern)
_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_SCHEME_CHARS = _LETTERS | frozenset("0123456789+.-")


def _masked(match: re.Match[str]) -> str:
    """``scheme://user:***@`` or ``scheme://***@`` (a lone token is all secret) up to the
    word's last '@' (a password may hold one); the word unchanged without userinfo."""
    word = match[0]
    i, at = word.find("://"), word.rfind("@")
    if i < 0 or at < i:
        return word
    run = word[:at]
    start = i
    while start > 0 and run[start - 1] in _SCHEME_CHARS:
        start -= 1
    while start < i and run[start] not in _LETTERS:
        start += 1  # a scheme starts with a letter, any case (HTTP://)
    info = run[i + 3 :]
    if start == i or not info:
        return word
    user, colon, _secret = info.partition(":")
    return run[: i + 3] + (f"{user}:***@" if colon else "***@") + word[at + 1 :]


def mask_url(text: str) -> str:
    """``http://user:secret@host`` -> ``http://user:***@host`` and ``http://token@host`` ->
    ``http://***@host``, anywhere in ``text``; a password with characters a URL should not
    have (``/ # ?``) is masked whole. Linear in the length of ``text``."""
    if "://" not in text or "@" not in text:
        return text
    return re.sub(_WORD, _masked, text)  # re caches the compiled pattern


def mask_data(value: Any) -> Any:
    """``mask_url`` applied to every string in a nested structure."""
    if isinstance(value, dict):
        return {k: mask_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_data(v) for v in value]
    if isinstance(value, str):
        return mask_url(value)
    return value
