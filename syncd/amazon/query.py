"""Query strings built exactly as SP-API expects them.

- An array parameter is ONE parameter whose values are joined with commas; Amazon silently
  keeps only the first of a repeated parameter.
- Every value is percent-encoded exactly once when the query string is built, so a page token
  such as ``Ab+cD/eF9g==`` goes out as ``Ab%2BcD%2FeF9g%3D%3D``. Values are stored decoded,
  exactly as Amazon sent them.
- Times are UTC ISO 8601 with a ``Z``; a naive datetime is a bug and raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

QueryValue = str | int | datetime | Iterable[str]


def format_time(value: datetime) -> str:
    """Format an aware datetime as ``2026-03-01T10:00:00Z``, dropping fractions of a second.

    Truncating moves an ``*After`` bound earlier (a harmless overlap) and a ``*Before`` bound
    earlier (never past the bound the caller chose).

    Raises:
        ValueError: ``value`` is naive.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: syncd works in UTC only")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _encode_value(value: str) -> str:
    # ":" keeps times readable and "," separates list values; both are legal in a query
    # (RFC 3986 sub-delimiters) and decode to themselves. Everything else is encoded.
    return quote(value, safe=":,")


@dataclass(frozen=True)
class Query:
    """An immutable, ordered set of query parameters, each appearing once."""

    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def build(cls, values: Mapping[str, QueryValue | None]) -> Query:
        """Build a query from Python values, skipping None and empty lists.

        Raises:
            ValueError: a naive datetime, or a list element that contains a comma.
        """
        params: list[tuple[str, str]] = []
        for name, value in values.items():
            text = _to_text(name, value)
            if text is not None:
                params.append((name, text))
        return cls(tuple(params))

    @classmethod
    def decode(cls, text: str) -> Query:
        """Rebuild a query from the string :meth:`encode` made (to resume a stored search)."""
        params: list[tuple[str, str]] = []
        for part in filter(None, text.split("&")):
            name, _, value = part.partition("=")
            params.append((unquote(name), unquote(value)))
        return cls(tuple(params))

    def get(self, name: str) -> str | None:
        """Return a parameter's decoded value, or None."""
        return dict(self.params).get(name)

    def with_param(self, name: str, value: str) -> Query:
        """Return a copy with ``name`` set to ``value`` (replacing an earlier value)."""
        kept = tuple((key, old) for key, old in self.params if key != name)
        return Query((*kept, (name, value)))

    def without(self, *names: str) -> Query:
        """Return a copy without the named parameters."""
        return Query(tuple((key, value) for key, value in self.params if key not in names))

    def encode(self) -> str:
        """Return the query string, each value percent-encoded once (commas stay literal)."""
        return "&".join(
            f"{quote(name, safe='')}={_encode_value(value)}" for name, value in self.params
        )

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.params)

    def as_dict(self) -> dict[str, str]:
        """Return the parameters as a dict of decoded values."""
        return dict(self.params)


def _to_text(name: str, value: QueryValue | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    items = [str(item) for item in value]
    if not items:
        return None
    for item in items:
        if "," in item:
            raise ValueError(f"{name}: list value {item!r} contains a comma")
    return ",".join(items)
