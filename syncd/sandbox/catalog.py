"""Reference data for generated orders: products, names, addresses, carriers, price levels.

The texts are invented and written in the marketplace's own language and script (German
umlauts, Turkish, Arabic, Japanese, Simplified Chinese, ...) so that a client's storage of
non-ASCII text is exercised. Names include apostrophes (``O'Connor``) on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Product:
    """A product a generated seller sells in every marketplace, with its titles by language."""

    code: str
    base_price_usd: Decimal
    titles: dict[str, str]

    def title(self, language: str) -> str:
        """Return the title in ``language``, falling back to English."""
        return self.titles.get(language, self.titles["en"])


PRODUCTS: tuple[Product, ...] = (
    Product(
        "CABLE",
        Decimal("9.99"),
        {
            "en": "USB-C Charging Cable 2 m, Braided Nylon, Fast Charge",
            "de": "USB-C Ladekabel 2 m, Nylon geflochten, Schnellladen",
            "fr": "Câble de charge USB-C 2 m, nylon tressé, charge rapide",
            "it": "Cavo di ricarica USB-C 2 m, nylon intrecciato, ricarica rapida",
            "es": "Cable de carga USB-C 2 m, nailon trenzado, carga rápida",
            "pt": "Cabo de carregamento USB-C 2 m, nylon trançado, carga rápida",
            "nl": "USB-C oplaadkabel 2 m, gevlochten nylon, snelladen",
            "sv": "USB-C-laddkabel 2 m, flätad nylon, snabbladdning",
            "pl": "Kabel do ładowania USB-C 2 m, oplot nylonowy, szybkie ładowanie",
            "tr": "USB-C Şarj Kablosu 2 m, Örgülü Naylon, Hızlı Şarj",
            "ar": "كابل شحن USB-C بطول 2 متر، نايلون مضفر، شحن سريع",
            "zh": "USB-C 充电线 2 米 尼龙编织 快充",
            "ja": "USB-C 充電ケーブル 2m ナイロン編み 急速充電対応",
        },
    ),
    Product(
        "LAMP",
        Decimal("29.99"),
        {
            "en": "LED Desk Lamp, Dimmable, Touch Control, Eye-Caring",
            "de": "LED Schreibtischlampe, dimmbar, Touch-Steuerung, augenschonend",
            "fr": "Lampe de bureau LED, intensité réglable, commande tactile",
            "it": "Lampada da scrivania LED, dimmerabile, controllo touch",
            "es": "Lámpara de escritorio LED, regulable, control táctil",
            "pt": "Luminária de mesa LED, regulável, controle por toque",
            "nl": "LED-bureaulamp, dimbaar, aanraakbediening",
            "sv": "LED-skrivbordslampa, dimbar, touchkontroll",
            "pl": "Lampka biurkowa LED, ściemnialna, sterowanie dotykowe",
            "tr": "LED Masa Lambası, Kısılabilir, Dokunmatik Kontrol",
            "ar": "مصباح مكتب LED قابل للتعتيم مع تحكم باللمس",
            "zh": "LED 护眼台灯 无极调光 触控开关",
            "ja": "LEDデスクライト 調光 タッチ操作 目に優しい",
        },
    ),
    Product(
        "EARBUDS",
        Decimal("39.99"),
        {
            "en": "Wireless Earbuds, Bluetooth 5.3, with Charging Case",
            "de": "Kabellose Ohrhörer, Bluetooth 5.3, mit Ladeetui",
            "fr": "Écouteurs sans fil Bluetooth 5.3 avec étui de charge",
            "it": "Auricolari wireless Bluetooth 5.3 con custodia di ricarica",
            "es": "Auriculares inalámbricos Bluetooth 5.3 con estuche de carga",
            "pt": "Fones de ouvido sem fio Bluetooth 5.3 com estojo de carregamento",
            "nl": "Draadloze oordopjes, Bluetooth 5.3, met oplaadcase",
            "sv": "Trådlösa hörlurar, Bluetooth 5.3, med laddningsfodral",
            "pl": "Słuchawki bezprzewodowe Bluetooth 5.3 z etui ładującym",
            "tr": "Kablosuz Kulaklık, Bluetooth 5.3, Şarj Kutulu",
            "ar": "سماعات أذن لاسلكية بلوتوث 5.3 مع علبة شحن",
            "zh": "无线蓝牙耳机 蓝牙 5.3 带充电仓",
            "ja": "ワイヤレスイヤホン Bluetooth 5.3 充電ケース付き",
        },
    ),
    Product(
        "BOTTLE",
        Decimal("19.99"),
        {
            "en": "Stainless Steel Water Bottle 750 ml, Vacuum Insulated",
            "de": "Edelstahl Trinkflasche 750 ml, vakuumisoliert, auslaufsicher",
            "fr": "Gourde en acier inoxydable 750 ml, isotherme",
            "it": "Borraccia in acciaio inox 750 ml, isolamento sottovuoto",
            "es": "Botella de acero inoxidable 750 ml, aislamiento al vacío",
            "pt": "Garrafa térmica de aço inoxidável 750 ml",
            "nl": "Roestvrijstalen drinkfles 750 ml, vacuümgeïsoleerd",
            "sv": "Vattenflaska i rostfritt stål 750 ml, vakuumisolerad",
            "pl": "Butelka ze stali nierdzewnej 750 ml, izolowana próżniowo",
            "tr": "Paslanmaz Çelik Su Şişesi 750 ml, Vakum Yalıtımlı",
            "ar": "زجاجة ماء من الفولاذ المقاوم للصدأ 750 مل، معزولة",
            "zh": "不锈钢真空保温杯 750 毫升",
            "ja": "ステンレス 真空断熱 水筒 750ml",
        },
    ),
    Product(
        "YOGAMAT",
        Decimal("24.99"),
        {
            "en": "Yoga Mat 6 mm, Non-Slip, with Carrying Strap",
            "de": "Yogamatte 6 mm, rutschfest, mit Tragegurt, Größe 183 × 61 cm",
            "fr": "Tapis de yoga 6 mm, antidérapant, avec sangle",
            "it": "Tappetino yoga 6 mm, antiscivolo, con cinghia",
            "es": "Esterilla de yoga 6 mm, antideslizante, con correa",
            "pt": "Tapete de yoga 6 mm, antiderrapante, com alça",
            "nl": "Yogamat 6 mm, antislip, met draagriem",
            "sv": "Yogamatta 6 mm, halkfri, med bärrem",
            "pl": "Mata do jogi 6 mm, antypoślizgowa, z paskiem",
            "tr": "Yoga Matı 6 mm, Kaymaz, Taşıma Askılı",
            "ar": "سجادة يوغا 6 مم مانعة للانزلاق مع حزام",
            "zh": "瑜伽垫 6 毫米 防滑 附背带",
            "ja": "ヨガマット 6mm 滑り止め 収納ストラップ付き",
        },
    ),
    Product(
        "SCALE",
        Decimal("14.99"),
        {
            "en": "Digital Kitchen Scale 5 kg, 1 g Precision",
            "de": "Digitale Küchenwaage 5 kg, 1 g genau, für Küche & Büro",
            "fr": "Balance de cuisine numérique 5 kg, précision 1 g",
            "it": "Bilancia da cucina digitale 5 kg, precisione 1 g",
            "es": "Báscula de cocina digital 5 kg, precisión de 1 g",
            "pt": "Balança de cozinha digital 5 kg, precisão de 1 g",
            "nl": "Digitale keukenweegschaal 5 kg, 1 g nauwkeurig",
            "sv": "Digital köksvåg 5 kg, 1 g noggrannhet",
            "pl": "Cyfrowa waga kuchenna 5 kg, dokładność 1 g",
            "tr": "Dijital Mutfak Tartısı 5 kg, 1 g Hassasiyet",
            "ar": "ميزان مطبخ رقمي 5 كجم بدقة 1 جرام",
            "zh": "电子厨房秤 5 公斤 精度 1 克",
            "ja": "デジタル キッチンスケール 5kg 1g単位",
        },
    ),
    Product(
        "POWERBANK",
        Decimal("29.99"),
        {
            "en": "Power Bank 10000 mAh, USB-C PD 20 W",
            "de": "Powerbank 10000 mAh, USB-C PD 20 W, für unterwegs",
            "fr": "Batterie externe 10000 mAh, USB-C PD 20 W",
            "it": "Power bank 10000 mAh, USB-C PD 20 W",
            "es": "Batería externa 10000 mAh, USB-C PD 20 W",
            "pt": "Carregador portátil 10000 mAh, USB-C PD 20 W",
            "nl": "Powerbank 10000 mAh, USB-C PD 20 W",
            "sv": "Powerbank 10000 mAh, USB-C PD 20 W",
            "pl": "Powerbank 10000 mAh, USB-C PD 20 W",
            "tr": "Taşınabilir Şarj Cihazı 10000 mAh, USB-C PD 20 W",
            "ar": "شاحن متنقل 10000 مللي أمبير، USB-C PD بقدرة 20 واط",
            "zh": "充电宝 10000 毫安 USB-C PD 20 瓦快充",
            "ja": "モバイルバッテリー 10000mAh USB-C PD 20W",
        },
    ),
    Product(
        "TEAPOT",
        Decimal("22.99"),
        {
            "en": "Glass Teapot with Removable Infuser, 1 L",
            "de": "Glas-Teekanne mit herausnehmbarem Sieb, 1 L, hitzebeständig",
            "fr": "Théière en verre avec infuseur amovible, 1 L",
            "it": "Teiera in vetro con infusore rimovibile, 1 L",
            "es": "Tetera de cristal con infusor extraíble, 1 L",
            "pt": "Bule de vidro com infusor removível, 1 L",
            "nl": "Glazen theepot met uitneembaar filter, 1 L",
            "sv": "Tekanna i glas med löstagbar sil, 1 l",
            "pl": "Szklany dzbanek do herbaty z zaparzaczem, 1 l",
            "tr": "Demlikli Cam Çaydanlık, 1 L",
            "ar": "إبريق شاي زجاجي مع مصفاة قابلة للإزالة، 1 لتر",
            "zh": "耐热玻璃茶壶 带可拆卸滤网 1 升",
            "ja": "耐熱ガラス ティーポット 茶こし付き 1L",
        },
    ),
)


@dataclass(frozen=True)
class NameStyle:
    """Given and family names of one language and how they are joined."""

    given: tuple[str, ...]
    family: tuple[str, ...]
    family_first: bool = False
    separator: str = " "

    def join(self, given: str, family: str) -> str:
        """Return a full name in the language's usual order."""
        parts = (family, given) if self.family_first else (given, family)
        return self.separator.join(parts)


NAME_STYLES: dict[str, NameStyle] = {
    "en": NameStyle(
        ("James", "Olivia", "Liam", "Emma", "Noah", "Grace", "Priya", "Aarav", "Siobhán"),
        ("Smith", "Johnson", "O'Connor", "Taylor", "Nguyen", "Sharma", "Patel", "MacLeod"),
    ),
    "de": NameStyle(
        ("Jürgen", "Lukas", "Anna", "Sophie", "Jörg", "Björn", "Lea", "Özlem", "Frieda"),
        ("Müller", "Schäfer", "Weiß", "Groß", "Schmidt", "Köhler", "Hoffmann", "Şahin"),
    ),
    "fr": NameStyle(
        ("François", "Hélène", "Léa", "Chloé", "Gaël", "Jérôme", "Camille", "Noël"),
        ("Lefèvre", "Dubois", "Moreau", "Girard", "Fontaine", "Lambert", "D'Arcy"),
    ),
    "it": NameStyle(
        ("Giuseppe", "Francesca", "Niccolò", "Chiara", "Lorenzo", "Giulia"),
        ("Rossi", "Bianchi", "Esposito", "Colombo", "Ricci", "D'Angelo"),
    ),
    "es": NameStyle(
        ("José", "María", "Íñigo", "Lucía", "Sofía", "Ramón", "Begoña"),
        ("García", "Núñez", "Fernández", "López", "Martínez", "Peña"),
    ),
    "pt": NameStyle(
        ("João", "Maria", "Luís", "Ana", "Gonçalo", "Thiago"),
        ("Silva", "Santos", "Conceição", "Araújo", "Gonçalves", "Ribeiro"),
    ),
    "nl": NameStyle(
        ("Daan", "Sanne", "Thijs", "Femke", "Joëlle", "Sem"),
        ("de Vries", "Jansen", "van den Berg", "Bakker", "Visser", "van Dijk"),
    ),
    "sv": NameStyle(
        ("Åsa", "Björn", "Linnéa", "Oskar", "Maja", "Göran"),
        ("Lindström", "Andersson", "Johansson", "Nyström", "Öberg", "Ekström"),
    ),
    "pl": NameStyle(
        ("Łukasz", "Zofia", "Paweł", "Małgorzata", "Wojciech", "Agnieszka"),
        ("Wiśniewski", "Kowalska", "Wójcik", "Zieliński", "Kamińska", "Nowak"),
    ),
    "tr": NameStyle(
        ("Çağla", "Ömer", "Gülşen", "İbrahim", "Şeyma", "Mehmet", "Ayşe"),
        ("Öztürk", "Yıldız", "Çelik", "Şahin", "Doğan", "Kılıç", "Yılmaz"),
    ),
    "ar": NameStyle(
        ("محمد", "فاطمة", "أحمد", "نورة", "خالد", "سارة", "عبدالله"),
        ("العتيبي", "الشمري", "القحطاني", "المصري", "الحربي", "الزهراني"),
    ),
    "zh": NameStyle(
        ("伟明", "美玲", "志强", "慧敏", "俊杰", "秀英", "嘉怡"),
        ("陈", "林", "黄", "李", "王", "张", "吴"),
        family_first=True,
        separator="",
    ),
    "ja": NameStyle(
        ("健太", "花子", "翔", "美咲", "大輔", "さくら", "陽菜"),
        ("佐藤", "鈴木", "高橋", "田中", "渡辺", "伊藤", "山本"),
        family_first=True,
    ),
}


@dataclass(frozen=True)
class Place:
    """A street (with ``{n}`` for the house number), city, state or region and postal code."""

    street: str
    city: str
    state: str
    postal_code: str


PLACES: dict[str, tuple[Place, ...]] = {
    "US": (
        Place("{n} Pine Street", "Seattle", "WA", "98101"),
        Place("{n} Elm Avenue", "Austin", "TX", "78701"),
        Place("{n} Maple Drive", "Columbus", "OH", "43004"),
    ),
    "CA": (
        Place("{n} rue Saint-Denis", "Montréal", "QC", "H2X 3K2"),
        Place("{n} King Street West", "Toronto", "ON", "M5H 1J9"),
        Place("{n} Granville Street", "Vancouver", "BC", "V6C 1T2"),
    ),
    "MX": (
        Place("Av. Insurgentes Sur {n}", "Ciudad de México", "CDMX", "03100"),
        Place("Calle Hidalgo {n}", "Guadalajara", "Jalisco", "44100"),
        Place("Av. Constitución {n}", "Monterrey", "Nuevo León", "64000"),
    ),
    "BR": (
        Place("Rua das Flores, {n}", "São Paulo", "SP", "01234-567"),
        Place("Avenida Atlântica, {n}", "Rio de Janeiro", "RJ", "22021-001"),
        Place("Rua da Bahia, {n}", "Belo Horizonte", "MG", "30160-011"),
    ),
    "IE": (
        Place("{n} Grafton Street", "Dublin", "Co. Dublin", "D02 VF65"),
        Place("{n} Patrick Street", "Cork", "Co. Cork", "T12 X70A"),
    ),
    "ES": (
        Place("Calle Mayor, {n}", "Madrid", "Madrid", "28013"),
        Place("Carrer de Mallorca, {n}", "Barcelona", "Barcelona", "08036"),
        Place("Calle Larios, {n}", "Málaga", "Málaga", "29005"),
    ),
    "GB": (
        Place("{n} Baker Street", "London", "Greater London", "NW1 6XE"),
        Place("{n} Deansgate", "Manchester", "Greater Manchester", "M3 2BW"),
        Place("{n} Princes Street", "Edinburgh", "Midlothian", "EH2 2ER"),
    ),
    "FR": (
        Place("{n} rue de Rivoli", "Paris", "Île-de-France", "75001"),
        Place("{n} rue de la République", "Lyon", "Auvergne-Rhône-Alpes", "69002"),
        Place("{n} La Canebière", "Marseille", "Provence-Alpes-Côte d'Azur", "13001"),
    ),
    "BE": (
        Place("Rue Neuve {n}", "Bruxelles", "Bruxelles-Capitale", "1000"),
        Place("Meir {n}", "Antwerpen", "Antwerpen", "2000"),
    ),
    "NL": (
        Place("Kalverstraat {n}", "Amsterdam", "Noord-Holland", "1012 NX"),
        Place("Coolsingel {n}", "Rotterdam", "Zuid-Holland", "3011 AD"),
    ),
    "DE": (
        Place("Hauptstraße {n}", "München", "Bayern", "80331"),
        Place("Königsallee {n}", "Düsseldorf", "Nordrhein-Westfalen", "40212"),
        Place("Schloßstraße {n}", "Berlin", "Berlin", "12163"),
    ),
    "IT": (
        Place("Via del Corso {n}", "Roma", "RM", "00186"),
        Place("Corso Buenos Aires {n}", "Milano", "MI", "20124"),
        Place("Via Toledo {n}", "Napoli", "NA", "80134"),
    ),
    "SE": (
        Place("Drottninggatan {n}", "Stockholm", "Stockholms län", "111 51"),
        Place("Kungsportsavenyen {n}", "Göteborg", "Västra Götalands län", "411 36"),
    ),
    "ZA": (
        Place("{n} Long Street", "Cape Town", "Western Cape", "8001"),
        Place("{n} Jan Smuts Avenue", "Johannesburg", "Gauteng", "2196"),
    ),
    "PL": (
        Place("ul. Marszałkowska {n}", "Warszawa", "mazowieckie", "00-024"),
        Place("ul. Floriańska {n}", "Kraków", "małopolskie", "31-019"),
    ),
    "EG": (
        Place("{n} شارع التحرير", "القاهرة", "القاهرة", "11511"),
        Place("{n} طريق الحرية", "الإسكندرية", "الإسكندرية", "21500"),
    ),
    "TR": (
        Place("İstiklal Caddesi No:{n}", "İstanbul", "Beyoğlu", "34430"),
        Place("Atatürk Bulvarı No:{n}", "Ankara", "Çankaya", "06690"),
        Place("Kıbrıs Şehitleri Caddesi No:{n}", "İzmir", "Konak", "35220"),
    ),
    "SA": (
        Place("{n} طريق الملك فهد", "الرياض", "منطقة الرياض", "12211"),
        Place("{n} شارع التحلية", "جدة", "منطقة مكة المكرمة", "23434"),
    ),
    "AE": (
        Place("{n} Sheikh Zayed Road", "Dubai", "Dubai", "00000"),
        Place("{n} شارع الكورنيش", "أبوظبي", "أبوظبي", "00000"),
    ),
    "IN": (
        Place("{n} MG Road", "Bengaluru", "Karnataka", "560001"),
        Place("{n} Linking Road, Bandra West", "Mumbai", "Maharashtra", "400050"),
    ),
    "SG": (
        Place("{n} Orchard Road", "Singapore", "Singapore", "238801"),
        Place("Blk {n} Ang Mo Kio Avenue 3", "Singapore", "Singapore", "560123"),
    ),
    "AU": (
        Place("{n} George Street", "Sydney", "NSW", "2000"),
        Place("{n} Collins Street", "Melbourne", "VIC", "3000"),
        Place("{n} Queen Street", "Brisbane", "QLD", "4000"),
    ),
    "JP": (
        Place("西新宿2-8-{n}", "新宿区", "東京都", "163-8001"),
        Place("梅田1-1-{n}", "大阪市北区", "大阪府", "530-0001"),
        Place("栄3-5-{n}", "名古屋市中区", "愛知県", "460-0008"),
    ),
}

PHONE_PREFIXES: dict[str, str] = {
    "US": "+1", "CA": "+1", "MX": "+52", "BR": "+55", "IE": "+353", "ES": "+34", "GB": "+44",
    "FR": "+33", "BE": "+32", "NL": "+31", "DE": "+49", "IT": "+39", "SE": "+46", "ZA": "+27",
    "PL": "+48", "EG": "+20", "TR": "+90", "SA": "+966", "AE": "+971", "IN": "+91",
    "SG": "+65", "AU": "+61", "JP": "+81",
}  # fmt: skip


@dataclass(frozen=True)
class Warehouse:
    """A seller's ship-from address, in the shape of Amazon's MerchantAddress."""

    name: str
    address_line1: str
    city: str
    state: str
    postal_code: str
    country_code: str


# Cross-border sellers ship merchant-fulfilled orders from warehouses in mainland China.
CHINA_WAREHOUSES: tuple[Warehouse, ...] = (
    Warehouse(
        "深圳市星河跨境贸易有限公司",
        "宝安区西乡街道航城大道88号",
        "深圳市",
        "广东省",
        "518101",
        "CN",
    ),
    Warehouse(
        "义乌市鸿运电子商务有限公司", "稠城街道工人北路1001号", "义乌市", "浙江省", "322000", "CN"
    ),
    Warehouse(
        "广州云端仓储有限公司", "白云区太和镇大源北路168号", "广州市", "广东省", "510450", "CN"
    ),
)

CROSS_BORDER_CARRIERS: tuple[str, ...] = ("YunExpress", "4PX", "Yanwen", "China Post")
LOCAL_CARRIERS: dict[str, tuple[str, ...]] = {
    "US": ("USPS", "UPS", "FedEx"),
    "CA": ("Canada Post", "UPS"),
    "GB": ("Royal Mail", "DPD", "Evri"),
    "DE": ("DHL", "Deutsche Post", "Hermes"),
    "FR": ("Colissimo", "Chronopost"),
    "IT": ("Poste Italiane", "BRT"),
    "ES": ("Correos", "SEUR"),
    "JP": ("Yamato Transport", "Japan Post", "Sagawa Express"),
    "AU": ("Australia Post",),
}
DEFAULT_LOCAL_CARRIERS: tuple[str, ...] = ("DHL",)

# Rough price level of each currency against USD, so that prices look local.
PRICE_FACTORS: dict[str, Decimal] = {
    "USD": Decimal("1"), "CAD": Decimal("1.35"), "MXN": Decimal("18"), "BRL": Decimal("5.2"),
    "EUR": Decimal("0.92"), "GBP": Decimal("0.79"), "SEK": Decimal("10.5"),
    "ZAR": Decimal("18"), "PLN": Decimal("4"), "EGP": Decimal("48"), "TRY": Decimal("33"),
    "SAR": Decimal("3.75"), "AED": Decimal("3.67"), "INR": Decimal("83"),
    "SGD": Decimal("1.35"), "AUD": Decimal("1.5"), "JPY": Decimal("150"),
}  # fmt: skip

# Marketplaces whose seller proceeds show sales tax as its own TAX line (tax share of ITEM).
SALES_TAX_RATES: dict[str, Decimal] = {"US": Decimal("0.0825"), "CA": Decimal("0.13")}

# Amazon entity that collects tax as marketplace facilitator, shown in the item's TAX dataset.
_TAX_COLLECTORS_BY_COUNTRY: dict[str, str] = {
    "US": "Amazon.com Services LLC",
    "CA": "Amazon.com.ca ULC",
    "JP": "Amazon Japan G.K.",
    "AU": "Amazon Commercial Services Pty Ltd",
    "SG": "Amazon Asia-Pacific Holdings Private Limited",
}
_TAX_COLLECTORS_BY_REGION: dict[str, str] = {
    "na": "Amazon.com Services LLC",
    "eu": "Amazon Services Europe S.a.r.L.",
    "fe": "Amazon Asia-Pacific Holdings Private Limited",
}


def tax_collector(country_code: str, region: str) -> str:
    """Return the Amazon entity that collects tax as marketplace facilitator in a country."""
    return _TAX_COLLECTORS_BY_COUNTRY.get(country_code, _TAX_COLLECTORS_BY_REGION[region])


# The first segment of Amazon order ids seen per region; some start with a zero.
ORDER_ID_PREFIXES: dict[str, tuple[str, ...]] = {
    "na": ("111", "112", "113", "114", "701", "702"),
    "eu": ("028", "002", "026", "171", "202", "203", "302", "303", "304", "305", "402", "404"),
    "fe": ("249", "250", "503", "006"),
}

# Gift messages by language; two carry emoji, which need four bytes in UTF-8 (utf8mb4).
GIFT_MESSAGES: dict[str, str] = {
    "en": "Happy birthday! 🎉 Love, Grandma",
    "de": "Alles Gute zum Geburtstag! Liebe Grüße",
    "fr": "Joyeux anniversaire ! Bisous",
    "it": "Buon compleanno! Un abbraccio",
    "es": "¡Feliz cumpleaños! Un abrazo",
    "pt": "Feliz aniversário! Um abraço",
    "tr": "İyi ki doğdun! Sevgiler",
    "ar": "عيد ميلاد سعيد!",
    "zh": "生日快乐！🎂",
    "ja": "お誕生日おめでとう！",
}

# Legal-form suffix of company names on business orders, by country.
COMPANY_SUFFIXES: dict[str, str] = {
    "US": "LLC", "CA": "Inc.", "GB": "Ltd", "IE": "Ltd", "DE": "GmbH", "FR": "SARL",
    "BE": "SRL", "IT": "S.r.l.", "ES": "S.L.", "NL": "B.V.", "SE": "AB", "PL": "sp. z o.o.",
    "TR": "Ltd. Şti.", "MX": "S.A. de C.V.", "BR": "Ltda.", "AU": "Pty Ltd", "JP": "株式会社",
}  # fmt: skip
