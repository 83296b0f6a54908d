"""The attributes a browser would have, built on the server for `decide` and email content: geo
from an IP address and device from a user agent (server/delivery/context.py, as context.js and
tag.js resolve them), time from a moment and a time zone (as the SDK's attributes.js reads the
visitor's clock), and crm from a customer id (server/identity/customers.py, as /identify
answers it). What the caller gives in `attributes` wins, field by field."""
import ipaddress
import zoneinfo
from datetime import datetime, timedelta, timezone
from functools import lru_cache

from server.delivery.context import device_for_ua, geo_for_ip, geoip_path
from server.identity import customers, site_secrets
from server.predict.scorer import install_predictions

MAX_OFFSET_MIN = 14 * 60


@lru_cache(maxsize=1)
def _zones():
    return frozenset(zoneinfo.available_timezones())


def zone_problem(name):
    return None if isinstance(name, str) and name in _zones() else "must be an IANA time zone such as Europe/Paris"


def ip_problem(ip):
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return "must be an IPv4 or IPv6 address"
    return None


def time_attributes(now_ms, zone):
    """{hour, weekday (0 = Sunday), date} at now_ms in `zone`, as attributes.js's timeOf reads a Date."""
    moment = datetime.fromtimestamp(now_ms / 1000, timezone.utc).astimezone(zone)
    return {"hour": moment.hour, "weekday": (moment.weekday() + 1) % 7, "date": moment.strftime("%Y-%m-%d")}


def _fill(given, resolved):
    """`resolved` under `given`: what the caller gave wins, field by field. (merged, fields used)."""
    merged = dict(resolved)
    merged.update(given if isinstance(given, dict) else {})
    return merged, [k for k in resolved if not (isinstance(given, dict) and k in given)]


def _ignored(path, why):
    return {"path": path, "message": f"ignored: {why}"}


class Inputs:
    """What `decide` reads, resolved from a request body: `attributes`, `customer` (its key or
    None), `resolved` ({namespace: what the server computed}) and `ignored` ([{path, message}])."""

    def __init__(self, site, body, now_ms):
        self.attributes = dict(body.get("attributes") or {})
        self.customer, self.resolved, self.ignored = None, {}, []
        self._geo(body.get("ip"))
        self._device(body.get("user_agent"))
        self._time(now_ms, body.get("timezone"), body.get("utc_offset"))
        self._crm(site, body.get("customer_id"), now_ms)

    def _geo(self, ip):
        if ip is None:
            return
        if "geo" in self.attributes:
            self.ignored.append(_ignored("/ip", "attributes.geo is given"))
            return
        self.attributes["geo"] = self.resolved["geo"] = geo_for_ip(ip, geoip_path())

    def _device(self, user_agent):
        if user_agent is None:
            return
        merged, used = _fill(self.attributes.get("device"), device_for_ua(user_agent))
        if not used:
            self.ignored.append(_ignored("/user_agent", "attributes.device gives type, os and browser"))
            return
        self.attributes["device"] = merged
        self.resolved["device"] = {k: merged[k] for k in used}

    def _time(self, now_ms, zone_name, offset):
        if "time" in self.attributes:
            for path, given in (("/timezone", zone_name), ("/utc_offset", offset)):
                if given is not None:
                    self.ignored.append(_ignored(path, "attributes.time is given"))
            return
        if zone_name is not None:
            zone, label = zoneinfo.ZoneInfo(zone_name), zone_name
            if offset is not None:
                self.ignored.append(_ignored("/utc_offset", "timezone is given"))
        elif offset is not None:
            zone, label = timezone(timedelta(minutes=offset)), f"UTC{offset / 60:+g}"
        else:
            geo_zone = (self.attributes.get("geo") or {}).get("timezone")
            label = geo_zone if not zone_problem(geo_zone) else "UTC"
            zone = zoneinfo.ZoneInfo(label) if label != "UTC" else timezone.utc
        self.attributes["time"] = time_attributes(now_ms, zone)
        self.resolved["time"] = {**self.attributes["time"], "timezone": label}

    def _crm(self, site, customer_id, now_ms):
        if customer_id is None:
            return
        self.customer = site_secrets.customer_key(site, customer_id)
        stored, known = customers.resolve(site, customer_id, now_ms=now_ms)
        merged, used = _fill(self.attributes.get("crm"), stored)
        self.attributes["crm"] = merged
        self.resolved["crm"] = {k: merged[k] for k in used}
        self.resolved["customer"] = {"known": known}

    def predict(self, bundle):
        """predict.<goal> for the goals the bundle reads, scored by the models its revision ships,
        as the predict module scores them in the browser (a caller's own `predict` is ignored)."""
        goals = bundle.get("predict") or []
        if "predict" in self.attributes:
            self.ignored.append(_ignored("/attributes/predict", "only the site's models set predict"))
            del self.attributes["predict"]
        if not goals:
            return
        models = (bundle.get("revision") or {}).get("models") or {}
        install_predictions(self.attributes, models, goals)
        self.resolved["predict"] = {goal: p for goal, p in self.attributes["predict"].items() if goal in models}
