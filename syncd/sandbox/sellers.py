"""Sellers: each refresh token is one selling partner, derived from (seed, refresh token).

The same seed and refresh token always give the same seller id, brand, ASINs and
warehouse, and so the same generated orders. Another refresh token is another seller.
"""

from __future__ import annotations

import base64
import hashlib
import random
from dataclasses import dataclass

from syncd.sandbox import catalog, lifecycle
from syncd.sandbox.marketplaces import Marketplace

_ASIN_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"


@dataclass(frozen=True)
class Seller:
    """A selling partner of the sandbox. ``refresh_token`` is a secret: never log it."""

    seller_id: str
    refresh_token: str
    brand: str  # SKU prefix
    asins: dict[str, str]  # product code -> ASIN
    sku_variants: dict[str, str]  # product code -> SKU suffix
    warehouse: catalog.Warehouse

    def sku(self, product: catalog.Product) -> str:
        """Return the seller's SKU for a product, the same in every marketplace."""
        return f"{self.brand}-{product.code}-{self.sku_variants[product.code]}"

    def rng(self, seed: int, *purpose: str) -> random.Random:
        """Return a random generator seeded by the seed, this seller and ``purpose``."""
        return seeded_random(seed, self.seller_id, *purpose)

    def shipper_for(self, marketplace: Marketplace, *, cross_border: bool) -> lifecycle.Shipper:
        """Return where an MFN order in ``marketplace`` ships from and with which carriers.

        A cross-border order ships from the seller's warehouse in China, any other from a
        local fulfilment partner in the marketplace's country.
        """
        if cross_border:
            return lifecycle.Shipper(
                warehouse_address(self.warehouse), catalog.CROSS_BORDER_CARRIERS
            )
        place = catalog.PLACES[marketplace.country_code][0]
        local = {
            "name": f"{self.brand} Fulfillment {marketplace.country_code}",
            "addressLine1": place.street.format(n=17),
            "city": place.city,
            "stateOrRegion": place.state,
            "postalCode": place.postal_code,
            "countryCode": marketplace.country_code,
        }
        carriers = catalog.LOCAL_CARRIERS.get(
            marketplace.country_code, catalog.DEFAULT_LOCAL_CARRIERS
        )
        return lifecycle.Shipper(local, carriers)


def seeded_random(*parts: object) -> random.Random:
    """Return a random generator seeded by ``parts`` joined with colons.

    String seeds are hashed with SHA-512 by :class:`random.Random`, so the sequence is the
    same on every run and platform. The values are test data, not secrets.
    """
    return random.Random(":".join(map(str, parts)))  # noqa: S311 - reproducible data, not security


def derive_seller_id(seed: int, refresh_token: str) -> str:
    """Return the seller id for a refresh token: ``A`` and 13 characters, like Amazon's."""
    digest = hashlib.sha256(f"{seed}:{refresh_token}".encode()).digest()
    return "A" + base64.b32encode(digest).decode("ascii")[:13]


def derive_seller(seed: int, refresh_token: str) -> Seller:
    """Build the seller of a refresh token, deterministically from the seed."""
    seller_id = derive_seller_id(seed, refresh_token)
    rng = seeded_random(seed, seller_id, "profile")
    brand = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(2)) + str(
        rng.randint(1, 9)
    )
    asins = {
        product.code: "B0" + "".join(rng.choice(_ASIN_ALPHABET) for _ in range(8))
        for product in catalog.PRODUCTS
    }
    variants = {
        product.code: rng.choice(("BLK", "WHT", "GRY", "BLU", "01", "02", "XL"))
        for product in catalog.PRODUCTS
    }
    return Seller(
        seller_id=seller_id,
        refresh_token=refresh_token,
        brand=brand,
        asins=asins,
        sku_variants=variants,
        warehouse=rng.choice(catalog.CHINA_WAREHOUSES),
    )


def warehouse_address(warehouse: catalog.Warehouse) -> dict[str, str]:
    """Return a warehouse in the shape of Amazon's MerchantAddress."""
    return {
        "name": warehouse.name,
        "addressLine1": warehouse.address_line1,
        "city": warehouse.city,
        "stateOrRegion": warehouse.state,
        "postalCode": warehouse.postal_code,
        "countryCode": warehouse.country_code,
    }
