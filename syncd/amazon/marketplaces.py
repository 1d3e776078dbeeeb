"""Amazon's regions, their hosts and the marketplaces that belong to each.

Source: the "Marketplace IDs" and "SP-API Endpoints" pages of Amazon's SP-API documentation
(developer-docs.amazon.com/sp-api), as listed in 2026. A marketplace belongs to exactly one
region, and a request for it must go to that region's host.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from syncd import errors

Region = Literal["na", "eu", "fe"]
REGIONS: tuple[Region, ...] = get_args(Region)

PRODUCTION_HOSTS: dict[Region, str] = {
    "na": "https://sellingpartnerapi-na.amazon.com",
    "eu": "https://sellingpartnerapi-eu.amazon.com",
    "fe": "https://sellingpartnerapi-fe.amazon.com",
}
SANDBOX_HOSTS: dict[Region, str] = {
    "na": "https://sandbox.sellingpartnerapi-na.amazon.com",
    "eu": "https://sandbox.sellingpartnerapi-eu.amazon.com",
    "fe": "https://sandbox.sellingpartnerapi-fe.amazon.com",
}


@dataclass(frozen=True)
class Marketplace:
    """One Amazon marketplace: its id, country, region and selling currency."""

    marketplace_id: str
    country_code: str  # Amazon's code; the United Kingdom is "UK", not ISO's "GB"
    country: str
    region: Region
    currency: str  # ISO 4217


MARKETPLACES: tuple[Marketplace, ...] = (
    Marketplace("A2EUQ1WTGCTBG2", "CA", "Canada", "na", "CAD"),
    Marketplace("ATVPDKIKX0DER", "US", "United States", "na", "USD"),
    Marketplace("A1AM78C64UM0Y8", "MX", "Mexico", "na", "MXN"),
    Marketplace("A2Q3Y263D00KWC", "BR", "Brazil", "na", "BRL"),
    Marketplace("A28R8C7NBKEWEA", "IE", "Ireland", "eu", "EUR"),
    Marketplace("A1RKKUPIHCS9HS", "ES", "Spain", "eu", "EUR"),
    Marketplace("A1F83G8C2ARO7P", "UK", "United Kingdom", "eu", "GBP"),
    Marketplace("A13V1IB3VIYZZH", "FR", "France", "eu", "EUR"),
    Marketplace("AMEN7PMS3EDWL", "BE", "Belgium", "eu", "EUR"),
    Marketplace("A1805IZSGTT6HS", "NL", "Netherlands", "eu", "EUR"),
    Marketplace("A1PA6795UKMFR9", "DE", "Germany", "eu", "EUR"),
    Marketplace("APJ6JRA9NG5V4", "IT", "Italy", "eu", "EUR"),
    Marketplace("A2NODRKZP88ZB9", "SE", "Sweden", "eu", "SEK"),
    Marketplace("AE08WJ6YKNBMC", "ZA", "South Africa", "eu", "ZAR"),
    Marketplace("A1C3SOZRARQ6R3", "PL", "Poland", "eu", "PLN"),
    Marketplace("ARBP9OOSHTCHU", "EG", "Egypt", "eu", "EGP"),
    Marketplace("A33AVAJ2PDY3EV", "TR", "Turkey", "eu", "TRY"),
    Marketplace("A17E79C6D8DWNP", "SA", "Saudi Arabia", "eu", "SAR"),
    Marketplace("A2VIGQ35RCS4UG", "AE", "United Arab Emirates", "eu", "AED"),
    Marketplace("A21TJRUUN4KGV", "IN", "India", "eu", "INR"),
    Marketplace("A19VAU5U5O7RUS", "SG", "Singapore", "fe", "SGD"),
    Marketplace("A39IBJ37TRP1C6", "AU", "Australia", "fe", "AUD"),
    Marketplace("A1VC38T7YXB528", "JP", "Japan", "fe", "JPY"),
)

_BY_ID = {marketplace.marketplace_id: marketplace for marketplace in MARKETPLACES}
_BY_COUNTRY = {marketplace.country_code: marketplace for marketplace in MARKETPLACES}


def get_marketplace(marketplace_id: str) -> Marketplace:
    """Return the marketplace with this id.

    Raises:
        errors.MarketplaceError: the id is not one of Amazon's marketplaces.
    """
    try:
        return _BY_ID[marketplace_id]
    except KeyError:
        raise errors.MarketplaceError(marketplace_id, None, None) from None


def find_by_country(country_code: str) -> Marketplace | None:
    """Return the marketplace of a country code such as ``DE`` or ``UK`` (``GB`` works too)."""
    code = country_code.strip().upper()
    return _BY_COUNTRY.get("UK" if code == "GB" else code)


def check_region(marketplace_ids: Iterable[str], region: Region) -> None:
    """Raise unless every marketplace id is known and belongs to ``region``.

    Raises:
        errors.MarketplaceError: naming the first id that is unknown or in another region.
    """
    for marketplace_id in marketplace_ids:
        marketplace = get_marketplace(marketplace_id)
        if marketplace.region != region:
            raise errors.MarketplaceError(marketplace_id, region, marketplace.region)


def region_of(marketplace_ids: Iterable[str]) -> Region:
    """Return the one region all the marketplaces share.

    Raises:
        errors.MarketplaceError: an id is unknown, or the ids span several regions.
    """
    ids = list(marketplace_ids)
    if not ids:
        raise ValueError("region_of() needs at least one marketplace id")
    region = get_marketplace(ids[0]).region
    check_region(ids, region)
    return region
