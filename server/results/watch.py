"""The alerts job of the background worker (server/recs/worker.py runs it): every
VITRINA_ALERTS_EVERY_S, each site whose latest version has a campaign with `auto_pause` gets its
results computed, and a campaign with a guardrail alert is paused by publishing a new version
attributed to the system (publishing.pause_campaign).

One check per site per period across every node: the check takes the store lock `alerts:<site>`
under a name of its own for the whole period and never releases it, so the lock's expiry is the
cadence and no other worker (on any node) checks the site again before it."""
import logging
import secrets

from server.configs import publishing
from server.results.report import campaign_result
from server.store import get_store

log = logging.getLogger(__name__)


def watched(bundle):
    """The campaigns of a bundle that may be paused: auto_pause with guardrails."""
    return [c for c in bundle["campaigns"] if c.get("auto_pause") and c.get("guardrails")]


def check_site(site):
    """Compute the watched campaigns' results and pause those with a guardrail alert; returns
    [(campaign key, new version, message)] of the pauses."""
    latest = publishing.latest(site)
    if latest is None:
        return []
    campaigns = watched(latest.bundle)
    if not campaigns:
        return []
    arms = {}
    for row in get_store().counters(site):
        arms.setdefault(row["campaign"], {}).setdefault(row["variation"], {})[row["goal"]] = row
    site_stats = latest.bundle.get("settings", {}).get("stats")
    paused = []
    for campaign in campaigns:
        result = campaign_result(campaign["key"], campaign, arms.get(campaign["key"], {}), site_stats)
        alarms = [a for a in result["alerts"] if a["kind"] == "guardrail"]
        if not alarms:
            continue
        note = f"auto_pause {campaign['key']}: " + "; ".join(a["message"] for a in alarms)
        version = publishing.pause_campaign(site, campaign["key"], note)
        if version is not None:
            log.warning("site %s: paused campaign %s in version %s: %s", site, campaign["key"], version, note)
            paused.append((campaign["key"], version, note))
    return paused


def run_pass(app, owner):
    """One look at every site whose period is over; returns [(site, campaign, version, note)]."""
    every_s = app.config["VITRINA_ALERTS_EVERY_S"]
    if not every_s:
        return []
    done = []
    with app.app_context():
        store = get_store()
        for site in store.list_sites():
            latest = publishing.latest(site)
            if latest is None or not watched(latest.bundle):
                continue
            if not store.acquire_lock(f"alerts:{site}", f"{owner}:{secrets.token_hex(4)}", every_s):
                continue  # checked less than every_s ago, here or on another node
            done += [(site, *pause) for pause in check_site(site)]
    return done
