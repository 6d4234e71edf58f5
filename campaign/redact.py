"""Keeping the API key out of text that a server wrote.

A server may echo what it received: an error page listing the request's headers, a 401
quoting the token. The client passes every such text through a `Redactor` where it
enters our objects (each `SendOutcome`, each `ApiError`, each JSON answer it returns,
httpx's log lines), so the store, logs, reports and error lines never see the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from html.entities import codepoint2name

REDACTED = "[redacted]"
SANCTUM_SECRET_MIN = 16  # the secret part of an `id|secret` key is redacted alone too
_BEARER = r"(bearer(?:\s|\+|%20)+)"  # the word as headers, JSON and URLs write it, any case
# Characters of a token as `Bearer <token>` writes it; not `\`, so that redacting a
# token inside a JSON string cannot eat the backslash of an escaped quote after it.
_TOKEN = r"[\w\-.~+/=|%]+"


class Redactor:
    """Replaces known secrets in text with `[redacted]`, however a server wrote them.

    Each secret is found regardless of case, whole or with any of its characters escaped
    as JSON (`\\/`, `\\u007c`), a URL (`%7C`) or HTML (`&#124;`) would write it. And any
    `Bearer <token>` is redacted too, since a server may quote a key cut short.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        forms = sorted({s for s in secrets if s}, key=len, reverse=True)
        spelled = "|".join(_spelled_any_way(s) for s in forms)
        self._secrets = re.compile(f"(?:{spelled})", re.IGNORECASE) if forms else None
        self._bearer = re.compile(_BEARER + _TOKEN, re.IGNORECASE)

    @classmethod
    def for_api_key(cls, key: str) -> Redactor:
        """The key; for a Sanctum `id|secret` key, its secret part alone as well."""
        secret = key.partition("|")[2]
        return cls([key, secret] if len(secret) >= SANCTUM_SECRET_MIN else [key])

    def __call__(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(REDACTED, text)
        return self._bearer.sub(rf"\1{REDACTED}", text)


def _spelled_any_way(secret: str) -> str:
    """A pattern matching `secret` with each character plain or escaped."""
    return "".join(_char_pattern(char) for char in secret)


def _char_pattern(char: str) -> str:
    """One character's spellings, the escaped ones first.

    Escaped first, so that a key ending in a backslash, which JSON writes as two, is
    matched whole: matching one would leave a lone backslash that breaks the JSON.
    """
    code = ord(char)
    forms = [rf"\\u{code:04x}"]  # JSON's \uXXXX
    if not char.isalnum():
        forms += [
            re.escape("\\" + char),  # backslash-escaped: JSON's \/ \" \\, PHP, shells
            f"%{code:02x}",  # URL-encoded
            f"&#0*{code};",  # HTML numeric entities
            f"&#x0*{code:x};",
        ]
        if code in codepoint2name:
            forms.append(f"&{codepoint2name[code]};")  # HTML named entity: &amp; &lt;…
        if char == "'":
            forms.append("&apos;")
        if char == " ":
            forms.append(r"\+")  # a space in a URL's query
    forms.append(re.escape(char))  # plain, last
    return f"(?:{'|'.join(forms)})"
