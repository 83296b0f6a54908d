"""One product of a feed: Google Merchant Center field names in, a normalised product out.

What a shopper is shown (title, links, image, price) comes from here alone, so every field is
bounded and every URL is an absolute http(s) URL without characters that could leave an HTML
attribute. Fields of the specification that recommendations do not use (description, gtin, ...)
are accepted and not stored."""
import math
import re

from server.wire.ids import PRODUCT_ID_RE as ITEM_ID_RE

ITEM_ID_RULE = "1 to 100 characters of A-Z a-z 0-9 _ . : @ + ~ / -"
AVAILABILITY = ("in_stock", "out_of_stock", "preorder", "backorder")
CUSTOM_LABELS = tuple(f"custom_label_{i}" for i in range(5))
TEXT_LIMITS = {"title": 150, "brand": 70, "product_type": 750, "google_product_category": 750,
               "item_group_id": 50, **{label: 100 for label in CUSTOM_LABELS}}
URL_FIELDS = ("link", "image_link")
MAX_URL = 2000
MAX_PRICE = 1e12
PUBLIC_FIELDS = ("id", "title", "link", "image_link", "price", "sale_price", "currency", "availability", "brand",
                 "product_type")  # what the public recommendations answer shows: never the custom labels
CATEGORY_SEPARATOR = " > "

_PRICE_RE = re.compile(r"^\s*(\d{1,13}(?:\.\d{1,4})?)(?:\s+([A-Za-z]{3}))?\s*\Z")
_CURRENCY_RE = re.compile(r"^[A-Za-z]{3}\Z")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_URL_BAD_RE = re.compile(r"[\x00-\x20\x7f\"'<>\\`]")
_URL_START_RE = re.compile(r"https?://[^/?#]+", re.IGNORECASE)  # a scheme we allow and a host


def _p(path, message):
    return {"path": path, "message": message}


def item_id_problem(value):
    """None when `value` is a valid product id, else why not."""
    if not isinstance(value, str) or not ITEM_ID_RE.match(value):
        return f"must be {ITEM_ID_RULE}"
    return None


def _text(record, field, problems):
    value = record.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and field != "title":
        value = str(value)  # e.g. a numeric google_product_category or item_group_id
    if not isinstance(value, str):
        problems.append(_p(f"/{field}", "must be a string"))
        return None
    value = value.strip()
    if _CONTROL_RE.search(value):
        problems.append(_p(f"/{field}", "must not contain control characters"))
    elif len(value) > TEXT_LIMITS[field]:
        problems.append(_p(f"/{field}", f"must be at most {TEXT_LIMITS[field]} characters"))
    return value or None


def url_problem(value):
    """None when `value` is an absolute http(s) URL fit for an HTML attribute, else why not."""
    if not isinstance(value, str):
        return "must be a string"
    if len(value) > MAX_URL:
        return f"must be at most {MAX_URL} characters"
    if _URL_BAD_RE.search(value):
        return "must not contain spaces, quotes, < > \\ ` or control characters (percent-encode them)"
    if not _URL_START_RE.match(value):
        return "must be an absolute http:// or https:// URL"
    return None


def _url(record, field, problems, required):
    value = record.get(field)
    if value is None or value == "":
        if required:
            problems.append(_p(f"/{field}", "is required"))
        return None
    problem = url_problem(value.strip() if isinstance(value, str) else value)
    if problem:
        problems.append(_p(f"/{field}", problem))
        return None
    return value.strip()


def parse_price(value):
    """(amount, currency or None) from 12.5, "12.50" or "12.50 EUR"; ValueError saying why not."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError('must be a number or a string such as "12.00 EUR"')
    if isinstance(value, str):
        match = _PRICE_RE.match(value)
        if not match:
            raise ValueError('must look like "12.00 EUR" or "12.00" (a dot for decimals, at most 4 of them)')
        amount, currency = float(match.group(1)), match.group(2)
    else:
        amount, currency = float(value), None
    if not math.isfinite(amount) or not 0 <= amount < MAX_PRICE:
        raise ValueError(f"must be at least 0 and below {MAX_PRICE:.0e}")
    return round(amount, 4), currency.upper() if currency else None


def _prices(record, problems):
    """(price, sale_price, currency) with one currency for both, or Nones with problems noted."""
    currency = record.get("currency")
    if currency in (None, ""):
        currency = None
    elif not isinstance(currency, str) or not _CURRENCY_RE.match(currency.strip()):
        problems.append(_p("/currency", "must be an ISO 4217 code such as EUR"))
        currency = None
    else:
        currency = currency.strip().upper()
    amounts = {}
    for field in ("price", "sale_price"):
        value = record.get(field)
        if value is None or value == "":
            if field == "price":
                problems.append(_p("/price", "is required"))
            continue
        try:
            amount, own = parse_price(value)
        except ValueError as e:
            problems.append(_p(f"/{field}", str(e)))
            continue
        if own and currency and own != currency:
            problems.append(_p(f"/{field}", f"is in {own}, the product's currency is {currency}"))
            continue
        currency = currency or own
        amounts[field] = amount
    if "price" in amounts and currency is None:
        problems.append(_p("/price", 'needs a currency: "12.00 EUR" or a currency field'))
    if "sale_price" in amounts and "price" in amounts and amounts["sale_price"] > amounts["price"]:
        problems.append(_p("/sale_price", "must not be above price"))
    return amounts.get("price"), amounts.get("sale_price"), currency


def _availability(record, problems):
    value = record.get("availability")
    if value is None or value == "":
        problems.append(_p("/availability", f"is required: one of {', '.join(AVAILABILITY)}"))
        return None
    normal = value.strip().lower().replace(" ", "_") if isinstance(value, str) else None
    if normal not in AVAILABILITY:
        problems.append(_p("/availability", f"must be one of {', '.join(AVAILABILITY)}"))
        return None
    return normal


def normalise_category(value):
    """"Home>Kitchen >  Mugs" -> "Home > Kitchen > Mugs"."""
    return CATEGORY_SEPARATOR.join(part.strip() for part in value.split(">") if part.strip())


def product_id(record):
    """The record's id as a string (JSON feeds may give numbers), or None."""
    value = record.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value.strip() if isinstance(value, str) else None


def validate_product(record):
    """(product, problems): the normalised product (keys with no value left out) when problems is
    empty; problems as [{"path", "message"}] otherwise."""
    if not isinstance(record, dict):
        return None, [_p("", "must be an object of product fields")]
    problems = []
    pid = product_id(record)
    problem = item_id_problem(pid)
    if problem:
        problems.append(_p("/id", problem if "id" in record else "is required"))
    product = {"id": pid}
    title = _text(record, "title", problems)
    if title is None and not any(p["path"] == "/title" for p in problems):
        problems.append(_p("/title", "is required"))
    product["title"] = title
    for field in URL_FIELDS:
        product[field] = _url(record, field, problems, required=field == "link")
    product["price"], product["sale_price"], product["currency"] = _prices(record, problems)
    product["availability"] = _availability(record, problems)
    for field in ("brand", "product_type", "google_product_category", "item_group_id", *CUSTOM_LABELS):
        product[field] = _text(record, field, problems)
    for field in ("product_type", "google_product_category"):
        if product[field]:
            product[field] = normalise_category(product[field]) or None
    if problems:
        return None, problems
    return {k: v for k, v in product.items() if v is not None}, []


def category(product):
    """The category recommendations group by: product_type, else google_product_category, else ""."""
    return product.get("product_type") or product.get("google_product_category") or ""


def category_prefixes(path):
    """"A > B > C" -> ["A", "A > B", "A > B > C"]."""
    parts = path.split(CATEGORY_SEPARATOR) if path else []
    return [CATEGORY_SEPARATOR.join(parts[:i]) for i in range(1, len(parts) + 1)]


def in_category(product_category, wanted):
    """Whether a product's category path is `wanted` or below it."""
    return product_category == wanted or product_category.startswith(wanted + CATEGORY_SEPARATOR)


def effective_price(product):
    return product.get("sale_price", product["price"])


def public_view(product):
    """The fields a shopper's page may show."""
    return {field: product.get(field) for field in PUBLIC_FIELDS}
