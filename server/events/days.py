"""The day an event is counted in for the daily series: its time in the site's time zone
(`settings.timezone` of the version it names, UTC by default), as YYYY-MM-DD.

The time is the event's own `ts` when it lies within LATE_S before its receipt (the SDK keeps
unsent events for the next page, so a late event is normal), else the receipt time: a clock in
the future, or days off, counts today."""
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
    seconds = ts_ms / 1000
    if not now - LATE_S <= seconds <= now:
        seconds = now
    return _day_of_minute(zone or DEFAULT_ZONE, int(seconds // 60))  # no zone moves its midnight off a minute
