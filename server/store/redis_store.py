"""Redis store (VITRINA_REDIS_URL): shared by every server node, Redis Cluster ready.

Every key of a site carries the hash tag `{<site>}`, so a site lives in one cluster slot and
each write is one atomic Lua script over keys of that slot:

    vitrina:sites                      set     every site name (one key: fine in a cluster)
    vitrina:{key:<key hash>}:site      string  site an API key hash opens (one key per lookup)
    vitrina:{<site>}:site              string  created_at; exists iff the site does
    vitrina:{<site>}:draft             hash    config, updated_at
    vitrina:{<site>}:latest            string  newest version number
    vitrina:{<site>}:versions          hash    version -> published_at
    vitrina:{<site>}:version:<n>       hash    payload, signature, published_at (immutable)
    vitrina:{<site>}:events            stream  id, visitor, type, body (MAXLEN ~ stream_maxlen)
    vitrina:{<site>}:seen              set     every recorded event id (idempotence)
    vitrina:{<site>}:visitor:<id>      hash    "a\\0<campaign>" -> variation ("" = holdout),
                                               "r\\0<campaign>\\0<goal>" -> that visitor's revenue
    vitrina:{<site>}:counters          hash    "<metric>\\0<campaign>\\0<variation>\\0<goal>" -> number

The stream is the raw event log for export and replay; it is trimmed approximately to
`stream_maxlen` entries per site (default one million), oldest first. Results never read it:
they read the counters hash, folded at write time with the same float64 arithmetic as the
SQLite store (Lua numbers are doubles, stored with 17 significant digits), so both backends
give identical counters for the same events.
"""
import json
import time

import redis
import redis.cluster

from .base import SiteExists, Store

STREAM_MAXLEN = 1_000_000
SEP = "\0"

# KEYS: latest, versions, version:<n>   ARGV: n, payload, signature, published_at
# Stores version n only if it is exactly the next one; otherwise returns 0 and the caller retries.
ADD_VERSION = """
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if last + 1 ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[3], 'payload', ARGV[2], 'signature', ARGV[3], 'published_at', ARGV[4])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""

# KEYS: seen, events, counters, visitor   ARGV: visitor_id, maxlen, then per event 5 values:
# id, type, body, campaign|goal, variation ("" = holdout)|value. Returns how many were new.
RECORD_EVENTS = r"""
redis.replicate_commands()  -- Redis 5/6: writes after XADD '*' (non-deterministic); a no-op since 7
local seen, events, counters, visitor = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local function fmt(x) return string.format('%.17g', x) end
local function add(field, delta)
  local current = tonumber(redis.call('HGET', counters, field) or '0')
  redis.call('HSET', counters, field, fmt(current + delta))
end
local new = 0
for i = 3, #ARGV, 5 do
  local id, kind, body, name, arg = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  if redis.call('SADD', seen, id) == 1 then
    new = new + 1
    redis.call('XADD', events, 'MAXLEN', '~', ARGV[2], '*', 'id', id, 'visitor', ARGV[1], 'type', kind, 'body', body)
    if kind == 'exposure' then
      -- the first variation recorded for (visitor, campaign) wins
      if redis.call('HSETNX', visitor, 'a\0' .. name, arg) == 1 then
        redis.call('HINCRBY', counters, 'visitors\0' .. name .. '\0' .. arg .. '\0', 1)
      end
    else
      -- a conversion counts for every campaign the visitor is assigned to now
      local value = tonumber(arg)
      local state = redis.call('HGETALL', visitor)
      for j = 1, #state, 2 do
        if string.sub(state[j], 1, 2) == 'a\0' then
          local campaign, variation = string.sub(state[j], 3), state[j + 1]
          local own = 'r\0' .. campaign .. '\0' .. name
          local before = redis.call('HGET', visitor, own)
          local b = tonumber(before or '0')
          local after = b + value
          redis.call('HSET', visitor, own, fmt(after))
          local counter = campaign .. '\0' .. variation .. '\0' .. name
          redis.call('HINCRBY', counters, 'conversions\0' .. counter, before and 0 or 1)
          add('revenue\0' .. counter, value)
          add('revenue_sq\0' .. counter, after * after - b * b)
        end
      end
    end
  end
end
return new
"""


def connect(url):
    """A redis-py client for redis://, rediss://, unix:// or redis+cluster:// URLs."""
    if url.startswith("redis+cluster://"):
        return redis.cluster.RedisCluster.from_url("redis://" + url[len("redis+cluster://"):], decode_responses=True)
    return redis.Redis.from_url(url, decode_responses=True)


class RedisStore(Store):
    def __init__(self, url, stream_maxlen=STREAM_MAXLEN):
        self.r = connect(url)
        self.stream_maxlen = stream_maxlen
        self._add_version = self.r.register_script(ADD_VERSION)
        self._record = self.r.register_script(RECORD_EVENTS)

    @staticmethod
    def _k(site, name):
        return f"vitrina:{{{site}}}:{name}"

    @staticmethod
    def _key_hash_key(key_hash):
        return f"vitrina:{{key:{key_hash}}}:site"

    # sites and keys
    def create_site(self, site, key_hash):
        if not self.r.set(self._k(site, "site"), repr(time.time()), nx=True):
            raise SiteExists(site)
        try:
            self.add_key(site, key_hash)
        except Exception:
            self.r.delete(self._k(site, "site"))  # as SQLite's rollback: no site without its key
            raise
        self.r.sadd("vitrina:sites", site)

    def add_key(self, site, key_hash):
        if not self.r.set(self._key_hash_key(key_hash), site, nx=True):
            raise ValueError("this API key hash is already registered")

    def site_exists(self, site):
        return self.r.exists(self._k(site, "site")) == 1

    def site_for_key_hash(self, key_hash):
        return self.r.get(self._key_hash_key(key_hash))

    def list_sites(self):
        return sorted(self.r.smembers("vitrina:sites"))

    # drafts and versions
    def save_draft(self, site, config_json):
        self.r.hset(self._k(site, "draft"), mapping={"config": config_json, "updated_at": repr(time.time())})

    def get_draft(self, site):
        return self.r.hget(self._k(site, "draft"), "config")

    def add_version(self, site, make_payload):
        # Optimistic: build version last+1 and store it only if it is still the next one,
        # so numbers stay consecutive without gaps even when make_payload fails.
        while True:
            version = int(self.r.get(self._k(site, "latest")) or 0) + 1
            payload, signature, published_at = make_payload(version)
            keys = [self._k(site, "latest"), self._k(site, "versions"), self._k(site, f"version:{version}")]
            if self._add_version(keys=keys, args=[version, payload, signature, published_at]):
                return version

    def get_version(self, site, version=None):
        if version is None:
            version = self.r.get(self._k(site, "latest"))
            if version is None:
                return None
        payload, signature, published_at = self.r.hmget(
            self._k(site, f"version:{int(version)}"), ["payload", "signature", "published_at"])
        return None if payload is None else (int(version), payload, signature, published_at)

    def latest_version(self, site):
        latest = self.r.get(self._k(site, "latest"))
        return None if latest is None else int(latest)

    def list_versions(self, site):
        rows = self.r.hgetall(self._k(site, "versions"))
        return sorted(((int(v), at) for v, at in rows.items()), reverse=True)

    # events
    def record_events(self, site, visitor_id, events):
        args = [visitor_id, self.stream_maxlen]
        for event in events:
            if event["type"] == "exposure":
                name, arg = event["campaign"], "" if event.get("holdout") else event["variation"]
            else:
                name, arg = event["goal"], repr(float(event.get("value") or 0.0))
            body = event.get("_json") or json.dumps({k: v for k, v in event.items() if not k.startswith("_")},
                                                    separators=(",", ":"))
            args += [event["id"], event["type"], body, name, arg]
        if not events:
            return 0
        keys = [self._k(site, n) for n in ("seen", "events", "counters", f"visitor:{visitor_id}")]
        return int(self._record(keys=keys, args=args))

    def counters(self, site):
        rows = {}
        for field, value in self.r.hgetall(self._k(site, "counters")).items():
            metric, campaign, variation, goal = field.split(SEP)
            row = rows.setdefault((campaign, variation, goal), {
                "campaign": campaign, "variation": variation or None, "goal": goal or None,
                "visitors": 0, "conversions": 0, "revenue": 0.0, "revenue_sq": 0.0})
            row[metric] = int(value) if metric in ("visitors", "conversions") else float(value)
        return list(rows.values())

    def count_rejections(self, site, counts):
        pipe = self.r.pipeline(transaction=False)
        for reason, n in counts.items():
            pipe.hincrby(self._k(site, "rejections"), reason, n)
        pipe.execute()

    def rejections(self, site):
        return {k: int(v) for k, v in sorted(self.r.hgetall(self._k(site, "rejections")).items())}

    def ping(self):
        return bool(self.r.ping())

    def close(self):
        """Close every connection (a cluster client keeps one pool per node)."""
        if isinstance(self.r, redis.cluster.RedisCluster):
            for node in self.r.get_nodes():
                if node.redis_connection is not None:
                    node.redis_connection.connection_pool.disconnect()
        self.r.close()
