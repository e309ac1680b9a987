"""Plaintext-secret detection and redaction.

Nothing here ever returns or formats a secret value: detectors answer *which kind* of secret a
value looks like, and :class:`Redactor` scrubs known values out of any text before it leaves the
process (log line, metric, exception message, report).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from deployguard.records import datarecord

# Well-known key formats. Each is anchored on a fixed prefix so ordinary config does not match.
KEY_FORMATS: dict[str, re.Pattern[str]] = {
    "AWS access key id": re.compile(r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b"),
    "private key block": re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "Stripe key": re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_\-]{35}"),
    "JSON Web Token": re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    "password in a URL": re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE),
}

# Variables whose name says they hold a secret: *_PASSWORD, *_SECRET, *_TOKEN, *API_KEY, …
SECRET_NAME = re.compile(
    r"(?:^|_)(?:PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|PRIVATE_KEY|CREDENTIALS?)$|API_?KEY$",
    re.IGNORECASE,
)

# Values that *point at* a secret instead of holding it.
_SSM_ARN = re.compile(r"^arn:aws[a-z-]*:ssm:[a-z0-9-]+:\d{12}:parameter/.+$")
_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$")
_SSM_NAME = re.compile(r"^/[A-Za-z0-9_.\-/]+$")
_DYNAMIC_REF = re.compile(r"^\{\{resolve:(?:ssm|ssm-secure|secretsmanager):.+\}\}$")


@datarecord
class Reference:
    """A pointer to a secret or parameter, named by a variable."""

    kind: str  # "ssm" or "secretsmanager"
    identifier: str  # parameter name or secret ARN: never a secret value


def parse_reference(value: str) -> Reference | None:
    """The SSM parameter or Secrets Manager secret that ``value`` points at, if it is a pointer."""
    value = value.strip()
    if _SECRET_ARN.match(value):
        return Reference(kind="secretsmanager", identifier=value)
    if _SSM_ARN.match(value):
        return Reference(kind="ssm", identifier=value.split(":parameter", 1)[1])
    if _SSM_NAME.match(value) and "//" not in value:
        return Reference(kind="ssm", identifier=value)
    return None


def is_reference(value: str) -> bool:
    return parse_reference(value) is not None or bool(_DYNAMIC_REF.match(value.strip()))


def detect_key_formats(value: str) -> list[str]:
    """Names of the well-known secret formats found in ``value`` (never the matched text)."""
    return [name for name, pattern in KEY_FORMATS.items() if pattern.search(value)]


def is_secret_name(variable: str) -> bool:
    return bool(SECRET_NAME.search(variable))


@dataclass
class Redactor:
    """Replaces every known secret value (and any well-known key format) in text with ``***``."""

    values: set[str] = field(default_factory=set)

    MASK = "***"
    MIN_LENGTH = 4  # shorter values would mask ordinary words

    @classmethod
    def for_environment(cls, variables: dict[str, str]) -> Redactor:
        """Treat as secret every value whose name says so or that looks like a known key format."""
        values = {
            value
            for name, value in variables.items()
            if (is_secret_name(name) or detect_key_formats(value)) and not is_reference(value)
        }
        return cls({v for v in values if len(v) >= cls.MIN_LENGTH})

    def merge(self, other: Redactor) -> Redactor:
        return Redactor(self.values | other.values)

    def __call__(self, text: str) -> str:
        for value in sorted(self.values, key=len, reverse=True):
            # the value as written, and as it appears inside a JSON string (escaped quotes, newlines)
            text = text.replace(value, self.MASK).replace(json.dumps(value)[1:-1], self.MASK)
        for pattern in KEY_FORMATS.values():
            text = pattern.sub(self.MASK, text)
        return text
