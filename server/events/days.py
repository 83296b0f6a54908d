"""The day an event is counted in for the daily series: its time in the site's time zone
(`settings.timezone` of the version it names, UTC by default), as YYYY-MM-DD.

The time is the event's own `ts`, held to the receipt time: never in the future, and never more
than LATE_S before it (the SDK keeps unsent events for the next page, so a late event is
normal; a clock years off is not, and counts today)."""
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

DEFAULT_ZONE = "UTC"
LATE_S = 2 * 86_400


@lru_cache(maxsize=4096)
def _day_of_minute(zone, minute):
    return datetime.fromtimestamp(minute * 60, ZoneInfo(zone)).strftime("%Y-%m-%d")


def day_of(ts_ms, zone, now):
    """The day (in `zone`) of the event time ts_ms, received at `now` (seconds)."""
    seconds = min(max(ts_ms / 1000, now - LATE_S), now)
    return _day_of_minute(zone or DEFAULT_ZONE, int(seconds // 60))  # no zone moves its midnight off a minute
