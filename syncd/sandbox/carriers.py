"""Carrier codes that the sandbox's confirmShipment accepts in ``carrierCode``.

Since April 2021 Amazon accepts only a code that matches one of the carrier options in
Seller Central exactly, case included. An unlisted carrier is sent as ``Other`` with its
name in ``carrierName``. The sandbox keeps its own list, apart from the one syncd's client
maps WMS carriers with, so that a mistake in one is caught by the other.

NOTE: Amazon's list is longer and changes over time, and it is shown only in Seller Central
and in the feed templates. This is a subset: the codes found in Amazon's older feed schema
(``YamatoTransport``, ``SagawaExpress``, ...) and the names used by carriers that serve
sellers in Europe, Japan and China (``Yamato Transport``, ``Yun Express``, ...). A code
that is valid at Amazon but missing here gets 400 from the sandbox.
"""

from __future__ import annotations

OTHER = "Other"

CARRIER_CODES: frozenset[str] = frozenset(
    {
        # North America
        "USPS",
        "UPS",
        "UPSMI",
        "UPS Mail Innovations",
        "FedEx",
        "FedEx SmartPost",
        "DHL",
        "DHL eCommerce",
        "DHL Global Mail",
        "OnTrac",
        "Lasership",
        "Newgistics",
        "OSM",
        "Streamlite",
        "Canada Post",
        "Purolator",
        "Estafeta",
        "Correios",
        # Europe
        "Royal Mail",
        "Parcelforce",
        "Yodel",
        "Evri",
        "Hermes",
        "Hermes Logistik Gruppe",
        "DPD",
        "GLS",
        "GO!",
        "TNT",
        "City Link",
        "Deutsche Post",
        "La Poste",
        "Colissimo",
        "Chronopost",
        "Poste Italiane",
        "SDA",
        "BRT",
        "Correos",
        "SEUR",
        "MRW",
        "Nacex",
        "PostNL",
        "Parcelnet",
        # India, Middle East, Asia-Pacific
        "India Post",
        "BlueDart",
        "Delhivery",
        "DTDC",
        "Aramex",
        "Japan Post",
        "Yamato Transport",
        "YamatoTransport",
        "Sagawa Express",
        "SagawaExpress",
        "NipponExpress",
        "Australia Post",
        "StarTrack",
        "Singapore Post",
        # Cross-border carriers used by sellers who ship from China
        "China Post",
        "4PX",
        "Yun Express",
        "Yanwen",
        "SF Express",
        "Cainiao",
        "SFC",
        "CNE",
        "Sunyou",
        "WanbExpress",
        # Any carrier not listed, named in carrierName
        OTHER,
    }
)


def is_carrier_code(value: str) -> bool:
    """Return whether ``value`` is one of the accepted codes, compared exactly."""
    return value in CARRIER_CODES
