"""What a collect request itself says about its traffic, before any event is read: the device
type from its user agent, the country from its address (looked up, never stored), and whether
it must not count at all (a bot or headless browser, an address in the site's
`settings.exclude_ips`). These are the server's facts: where a browser's claim could differ,
the server's value is the one recorded (docs/DESIGN.md "Slices and exclusions")."""
import ipaddress
import re

from server.configs import publishing
from server.delivery.context import MAX_UA, device_for_ua, geo_for_ip, geoip_path
from server.store import UNAVAILABLE

# Headless browsers and page-speed robots that ua-parser takes for ordinary browsers. The e2e
# suite's Chromium says HeadlessChrome too: its fixtures give it a normal user agent.
HEADLESS_RE = re.compile(r"Headless|PhantomJS|SlimerJS|Lighthouse|Page ?Speed|PTST/|GTmetrix|Prerender|"
                         r"Google-InspectionTool|Chrome-Lighthouse", re.I)
# Why an event is not counted, in the order a batch is checked (results show a counter per reason).
EXCLUSION_REASONS = ("bot", "ip", "internal", "forced")


def is_bot(user_agent):
    """A crawler per ua-parser (server/delivery/context.py's `bot`) or a headless browser."""
    user_agent = (user_agent or "")[:MAX_UA]
    return device_for_ua(user_agent)["type"] == "bot" or bool(HEADLESS_RE.search(user_agent))


def parse_networks(ranges):
    """The ip_network of each CIDR range (`settings.exclude_ips`, validated when saved)."""
    return tuple(ipaddress.ip_network(text, strict=False) for text in ranges or ())


def in_networks(address, networks):
    """Whether `address` (text, IPv4 or IPv6) is in one of `networks`; an unreadable one is not."""
    if not networks or not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


def request_facts(site, user_agent, address):
    """{"device", "country", "excluded"} of a request with this user agent from this address
    (after the trusted proxy hops): device type and country as the server resolves them, and
    "bot", "ip" or None. The address is only looked up, never returned."""
    excluded = None
    if is_bot(user_agent):
        excluded = "bot"
    elif in_networks(address, _excluded_networks(site)):
        excluded = "ip"
    return {"device": device_for_ua(user_agent)["type"], "country": geo_for_ip(address, geoip_path())["country"],
            "excluded": excluded}


def _excluded_networks(site):
    """The latest published version's `settings.exclude_ips`, kept with the version (never in the
    bundle: tag.js would show the shop's internal addresses to everyone). None while unknown (the
    store unreachable before this process ever loaded the site's latest version)."""
    try:
        latest = publishing.latest(site)
    except (publishing.VersionUnverifiable, *UNAVAILABLE):
        return None
    return latest.excluded_networks if latest else None
