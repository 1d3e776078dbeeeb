"""Carrier names as warehouses write them, mapped to Amazon's carrier codes.

Amazon accepts a shipment confirmation's ``carrierCode`` only from its own list, the one
Seller Central offers in its carrier drop-down (Seller Central help page G641). A carrier
that is not on the list goes as ``Other`` with the name in ``carrierName``; Amazon then
cannot check the tracking number, and such shipments earn no valid-tracking credit. So the
map below turns the names Chinese warehouses use (云途, 燕文, 顺丰 …) into listed codes, and
operators extend it with ``SYNCD_CARRIER_MAP`` (names) and ``SYNCD_CARRIER_CODES`` (codes
Amazon added after this list was written).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

OTHER = "Other"

# Amazon's carrier codes on syncd's list. Spelling and case are Amazon's and must be kept.
AMAZON_CARRIER_CODES: tuple[str, ...] = (
    "4PX",
    "Amazon Shipping",
    "Aramex",
    "Asendia",
    "Australia Post",
    "Blue Dart",
    "Bpost",
    "BRT",
    "Cainiao",
    "Canada Post",
    "China Post",
    "Chronopost",
    "CNE",
    "Colissimo",
    "Correos",
    "Couriers Please",
    "Delhivery",
    "Deutsche Post",
    "DHL",
    "DHL eCommerce",
    "DHL Global Mail",
    "DPD",
    "DTDC",
    "Evri",
    "FedEx",
    "FedEx SmartPost",
    "GLS",
    "Hermes",
    "Hongkong Post",
    "India Post",
    "Japan Post",
    "La Poste",
    "Lasership",
    "MRW",
    "Nacex",
    "Ninja Van",
    "Nippon Express",
    "OnTrac",
    "OSM",
    "Other",
    "Parcelforce",
    "PostNL",
    "Poste Italiane",
    "Purolator",
    "Royal Mail",
    "Sagawa Express",
    "SDA",
    "Sendle",
    "SEUR",
    "SF Express",
    "SFC",
    "Singapore Post",
    "StarTrack",
    "Sunyou",
    "TNT",
    "Toll",
    "UPS",
    "UPS Mail Innovations",
    "USPS",
    "WanbExpress",
    "Yamato Transport",
    "Yanwen",
    "Yodel",
    "Yun Express",
)

# Names and spellings seen in Chinese sellers' warehouse systems, with the code of each.
# Keys are compared after normalize(): case, spaces, hyphens and full-width forms do not count.
CARRIER_ALIASES: dict[str, str] = {
    "云途": "Yun Express",
    "云途物流": "Yun Express",
    "yunexpress": "Yun Express",
    "yuntu": "Yun Express",
    "燕文": "Yanwen",
    "燕文物流": "Yanwen",
    "递四方": "4PX",
    "四方": "4PX",
    "4px递四方": "4PX",
    "顺丰": "SF Express",
    "顺丰速运": "SF Express",
    "顺丰国际": "SF Express",
    "sf": "SF Express",
    "中国邮政": "China Post",
    "中邮": "China Post",
    "邮政小包": "China Post",
    "中国邮政小包": "China Post",
    "中国邮政ems": "China Post",
    "ems": "China Post",
    "chinapost": "China Post",
    "菜鸟": "Cainiao",
    "菜鸟无忧": "Cainiao",
    "菜鸟物流": "Cainiao",
    "三态": "SFC",
    "三态速递": "SFC",
    "顺友": "Sunyou",
    "顺友物流": "Sunyou",
    "万邦": "WanbExpress",
    "万邦速达": "WanbExpress",
    "wanb": "WanbExpress",
    "递一": "CNE",
    "递一国际": "CNE",
    "香港邮政": "Hongkong Post",
    "dhl快递": "DHL",
    "dhlexpress": "DHL",
    "敦豪": "DHL",
    "dhlecommerce": "DHL eCommerce",
    "联邦快递": "FedEx",
    "联邦": "FedEx",
    "fedexground": "FedEx",
    "美国联合包裹": "UPS",
    "美国邮政": "USPS",
    "英国皇家邮政": "Royal Mail",
    "皇家邮政": "Royal Mail",
    "德国邮政": "Deutsche Post",
    "日本邮政": "Japan Post",
    "日本郵便": "Japan Post",
    "大和": "Yamato Transport",
    "黑猫": "Yamato Transport",
    "yamato": "Yamato Transport",
    "佐川": "Sagawa Express",
    "sagawa": "Sagawa Express",
    "加拿大邮政": "Canada Post",
    "澳洲邮政": "Australia Post",
    "澳大利亚邮政": "Australia Post",
    "法国邮政": "La Poste",
    "意大利邮政": "Poste Italiane",
    "西班牙邮政": "Correos",
    "其他": "Other",
    "其它": "Other",
}
# Words that mean "a carrier not on the list"; they need the carrier's name beside them.
_OTHER_WORDS = ("Other", "其他", "其它", "Others")

_IGNORED = re.compile(r"[\s\-_.·・()（）]+")


def normalize(name: str) -> str:
    """Return a carrier name as the map compares it: NFKC, case-folded, without separators."""
    return _IGNORED.sub("", unicodedata.normalize("NFKC", name)).casefold()


@dataclass(frozen=True)
class Carrier:
    """A carrier as confirmShipment takes it: Amazon's code, plus a name for ``Other``."""

    code: str
    name: str | None = None  # carrierName; set only for Other

    @property
    def is_other(self) -> bool:
        """True when Amazon gets ``Other`` and cannot check the tracking number."""
        return self.code == OTHER


def unknown_codes(codes: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """Return the codes that are neither on syncd's list nor among ``extra``, sorted."""
    known = {*AMAZON_CARRIER_CODES, *extra}
    return sorted({code for code in codes if code not in known})


class CarrierMap:
    """Turns a warehouse's carrier text into Amazon's code.

    Args:
        extra_names: more names and their codes (``SYNCD_CARRIER_MAP``); they win over
            everything else, listed codes included (Hermes renamed itself Evri, say).
        extra_codes: Amazon codes beyond syncd's list (``SYNCD_CARRIER_CODES``).
    """

    def __init__(
        self, extra_names: Mapping[str, str] | None = None, extra_codes: Iterable[str] = ()
    ) -> None:
        codes = [*AMAZON_CARRIER_CODES, *extra_codes]
        self._codes = {normalize(code): code for code in codes}
        self._aliases = {normalize(name): code for name, code in CARRIER_ALIASES.items()}
        self._operator = {normalize(name): code for name, code in (extra_names or {}).items()}
        self._other_words = {normalize(word) for word in _OTHER_WORDS}

    def resolve(self, carrier: str, carrier_name: str | None = None) -> Carrier | None:
        """Return the carrier for confirmShipment, or None when there is nothing to send.

        A listed code or a known name gives Amazon's code. Any other text goes as ``Other``,
        named by ``carrier_name`` when given, else by the text itself. None means the carrier
        is blank, or ``Other`` (or 其他) without a name, which Amazon rejects.
        """
        text = carrier.strip()
        name = (carrier_name or "").strip() or None
        key = normalize(text)
        if not key:
            return None
        if key in self._other_words and key not in self._operator:
            return Carrier(OTHER, name) if name else None
        code = self._operator.get(key) or self._codes.get(key) or self._aliases.get(key)
        if code is None or code == OTHER:
            # Unlisted, or mapped to Other by the operator: Amazon shows the name given.
            return Carrier(OTHER, name or text)
        return Carrier(code)
