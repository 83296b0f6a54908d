"""This request's context: geo from MaxMind's maxminddb reader (bundled GeoLite2 City by default) and device
from user-agents. The IP is only looked up, never stored nor sent back."""
import re
from functools import lru_cache

import maxminddb
from flask import current_app, request
from user_agents import parse as parse_ua

from server.cache import app_cache
from server.configs.signing import script_json

EMPTY_GEO = {"country": None, "region": None, "city": None, "continent": None, "timezone": None}
MAX_UA = 512

# user-agents families mapped to the short, stable names conditions use (the SDK's UA
# fallback in sdk_js/src/attributes.js maps to the same names).
OS_NAMES = {"ios": "ios", "android": "android", "windows": "windows", "mac os x": "macos", "macos": "macos",
            "chrome os": "chromeos", "chromeos": "chromeos", "linux": "linux", "ubuntu": "linux", "fedora": "linux"}
BROWSER_NAMES = {"chrome": "chrome", "chrome mobile": "chrome", "chrome mobile ios": "chrome", "chromium": "chrome",
                 "chrome mobile webview": "chrome", "firefox": "firefox", "firefox mobile": "firefox",
                 "firefox ios": "firefox", "safari": "safari", "mobile safari": "safari",
                 "mobile safari ui/wkwebview": "safari", "edge": "edge", "edge mobile": "edge", "opera": "opera",
                 "opera mobile": "opera", "samsung internet": "samsung", "headlesschrome": "chrome"}
# What ua-parser misses (Applebot) or calls a phone (Firefox on an Android tablet), as the SDK's
# fallback reads it: both sides classify spec/07-devices.json alike.
BOT_RE = re.compile(r"bot/|spider|crawl|externalhit", re.I)


def geoip_path():
    configured = current_app.config.get("VITRINA_GEOIP_DB")
    if configured:
        return configured
    from _maxminddb_geolite2 import geolite2_database
    return geolite2_database()


@lru_cache(maxsize=4)
def _reader(path):
    # maxminddb (the reader geoip2 wraps; C extension), records read as plain dicts: geoip2's
    # model objects cost ~150 us per lookup, the raw record ~12 us.
    return maxminddb.open_database(path)


def _name(record):
    return (record or {}).get("names", {}).get("en")


def geo_for_ip(ip, path):
    try:
        record = _reader(path).get(ip)
    except (ValueError, TypeError):
        record = None
    if not record:
        return dict(EMPTY_GEO)
    subdivisions = record.get("subdivisions") or [{}]
    return {
        "country": record.get("country", {}).get("iso_code"),
        "region": subdivisions[-1].get("iso_code"),  # the most specific one, as geoip2 reads it
        "city": _name(record.get("city")),
        "continent": record.get("continent", {}).get("code"),
        "timezone": record.get("location", {}).get("time_zone"),
    }


def device_for_ua(ua_string):
    """{type, os, browser}; parsed once per distinct user agent (parsing costs far more than a lookup)."""
    return dict(_device((ua_string or "")[:MAX_UA]))


@lru_cache(maxsize=4096)
def _device(ua_string):
    ua = parse_ua(ua_string)
    if ua.is_bot or BOT_RE.search(ua_string):
        kind = "bot"
    elif ua.is_tablet or "Tablet" in ua_string:
        kind = "tablet"
    elif ua.is_mobile:
        kind = "mobile"
    else:
        kind = "desktop"
    os_family = (ua.os.family or "").lower()
    browser_family = (ua.browser.family or "").lower()
    return {"type": kind, "os": OS_NAMES.get(os_family, "other"), "browser": BROWSER_NAMES.get(browser_family, "other")}


def request_context():
    return {"geo": geo_for_ip(request.remote_addr, geoip_path()),
            "device": device_for_ua(request.headers.get("User-Agent"))}


def context_for(ip, ua_string):
    """The context of context.js as a script-safe JSON literal (bytes): geo, and the device's os
    and browser (its type the browser tells itself). Memoised per app under hash(ip): the
    process-salted hash keeps addresses themselves out of the cache."""
    cache = app_cache("context literals", 2048, "nothing: a GeoIP database or user-agent parser change restarts the server")

    def make():
        device = device_for_ua(ua_string)
        return script_json({"geo": geo_for_ip(ip, geoip_path()),
                            "device": {"os": device["os"], "browser": device["browser"]}}).encode()

    return cache.get_or_make((hash(ip), (ua_string or "")[:MAX_UA]), make)
