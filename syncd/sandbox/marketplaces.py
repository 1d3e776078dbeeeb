"""Amazon's marketplaces as the sandbox plays them: id, country, region, currency.

The ids are Amazon's public marketplace ids (developer-docs.amazon.com/sp-api/docs/
marketplace-ids). The sandbox keeps its own table, apart from the client's, so that a mistake
in one is caught by the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

Region = Literal["na", "eu", "fe"]
REGIONS: tuple[Region, ...] = ("na", "eu", "fe")

# Amazon keeps two years of orders, except in JP, AU and SG where orders since 2016 remain.
RETENTION_DAYS = 730
LONG_RETENTION_START = datetime(2016, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Marketplace:
    """One Amazon marketplace and the local conventions the order generator follows."""

    marketplace_id: str
    country_code: str
    region: Region
    currency: str
    name: str  # the salesChannel.marketplaceName Amazon returns, e.g. "Amazon.de"
    language: str  # language of generated product titles and names
    long_retention: bool = False

    @property
    def currency_decimals(self) -> int:
        """Number of decimals of the marketplace's currency (JPY has none)."""
        return 0 if self.currency == "JPY" else 2

    def retention_start(self, now: datetime) -> datetime:
        """Return the oldest creation time of an order that Amazon still returns."""
        if self.long_retention:
            return LONG_RETENTION_START
        return now - timedelta(days=RETENTION_DAYS)


MARKETPLACES: tuple[Marketplace, ...] = (
    Marketplace("A2EUQ1WTGCTBG2", "CA", "na", "CAD", "Amazon.ca", "en"),
    Marketplace("ATVPDKIKX0DER", "US", "na", "USD", "Amazon.com", "en"),
    Marketplace("A1AM78C64UM0Y8", "MX", "na", "MXN", "Amazon.com.mx", "es"),
    Marketplace("A2Q3Y263D00KWC", "BR", "na", "BRL", "Amazon.com.br", "pt"),
    Marketplace("A28R8C7NBKEWEA", "IE", "eu", "EUR", "Amazon.ie", "en"),
    Marketplace("A1RKKUPIHCS9HS", "ES", "eu", "EUR", "Amazon.es", "es"),
    Marketplace("A1F83G8C2ARO7P", "GB", "eu", "GBP", "Amazon.co.uk", "en"),
    Marketplace("A13V1IB3VIYZZH", "FR", "eu", "EUR", "Amazon.fr", "fr"),
    Marketplace("AMEN7PMS3EDWL", "BE", "eu", "EUR", "Amazon.com.be", "fr"),
    Marketplace("A1805IZSGTT6HS", "NL", "eu", "EUR", "Amazon.nl", "nl"),
    Marketplace("A1PA6795UKMFR9", "DE", "eu", "EUR", "Amazon.de", "de"),
    Marketplace("APJ6JRA9NG5V4", "IT", "eu", "EUR", "Amazon.it", "it"),
    Marketplace("A2NODRKZP88ZB9", "SE", "eu", "SEK", "Amazon.se", "sv"),
    Marketplace("AE08WJ6YKNBMC", "ZA", "eu", "ZAR", "Amazon.co.za", "en"),
    Marketplace("A1C3SOZRARQ6R3", "PL", "eu", "PLN", "Amazon.pl", "pl"),
    Marketplace("ARBP9OOSHTCHU", "EG", "eu", "EGP", "Amazon.eg", "ar"),
    Marketplace("A33AVAJ2PDY3EV", "TR", "eu", "TRY", "Amazon.com.tr", "tr"),
    Marketplace("A17E79C6D8DWNP", "SA", "eu", "SAR", "Amazon.sa", "ar"),
    Marketplace("A2VIGQ35RCS4UG", "AE", "eu", "AED", "Amazon.ae", "ar"),
    Marketplace("A21TJRUUN4KGV", "IN", "eu", "INR", "Amazon.in", "en"),
    Marketplace("A19VAU5U5O7RUS", "SG", "fe", "SGD", "Amazon.sg", "zh", long_retention=True),
    Marketplace("A39IBJ37TRP1C6", "AU", "fe", "AUD", "Amazon.com.au", "en", long_retention=True),
    Marketplace("A1VC38T7YXB528", "JP", "fe", "JPY", "Amazon.co.jp", "ja", long_retention=True),
)

_BY_ID = {marketplace.marketplace_id: marketplace for marketplace in MARKETPLACES}


def find_marketplace(marketplace_id: str) -> Marketplace | None:
    """Return the marketplace with this id, or None when Amazon has no such marketplace."""
    return _BY_ID.get(marketplace_id)


def marketplaces_of(region: str) -> tuple[Marketplace, ...]:
    """Return the marketplaces served by one region's host, in table order."""
    return tuple(marketplace for marketplace in MARKETPLACES if marketplace.region == region)
