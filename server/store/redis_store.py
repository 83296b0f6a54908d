"""Redis store (VITRINA_REDIS_URL): shared by every server node, Redis Cluster ready.

Every key of a site carries the hash tag `{<site>}`, so a site lives in one cluster slot and
each write is one atomic Lua script over keys of that slot:

    vitrina:sites                      set     every site name (one key: fine in a cluster)
    vitrina:schema                     string  version of this layout (upgrades run on start)
    vitrina:{key:<key hash>}           hash    site, name, scope, created_at, last_used_at of an
                                               API key (one key per lookup; deleted on revocation)
    vitrina:{<site>}:keys              hash    key name -> key hash
    vitrina:{<site>}:site              string  created_at; exists iff the site does
    vitrina:{<site>}:draft             hash    config, updated_at
    vitrina:{<site>}:latest            string  newest version number
    vitrina:{<site>}:versions          hash    version -> published_at
    vitrina:{<site>}:version:<n>       hash    payload, signature, published_at, meta (immutable)
    vitrina:{<site>}:revision          string  newest revision number
    vitrina:{<site>}:revision:<n>      hash    version, payload, signature, made_at (immutable)
    vitrina:{<site>}:events            stream  id, visitor, type, body (MAXLEN ~ stream_maxlen)
    vitrina:{<site>}:seen:<start>      set     the event ids recorded in the dedupe bucket that began at <start>
                                               (ms since 1970), expiring after the dedupe window (below)
    vitrina:{<site>}:seen              set     event ids recorded before the buckets (expires like a bucket)
    vitrina:{<site>}:orders            set     the keys "o:<order_id>" of imported orders (idempotence)
    vitrina:{<site>}:visitor:<id>      hash    "a\\0<campaign>" -> variation ("" = holdout) [+ "\\0<channel>"],
                                               "s\\0<campaign>", "x\\0<campaign>" -> its slices, covariates,
                                               "r\\0<campaign>\\0<goal>" -> that visitor's revenue,
                                               "o\\0<campaign>\\0<goal>" -> that visitor's orders,
                                               "d\\0<goal>\\0<order id>" -> 1 (orders counted once)
                                               (the hash expires visitor_ttl_s after the visitor's last recorded event)
    vitrina:{<site>}:totals            hash    "<campaign>\\0<variation>\\0<goal>" [+ "\\0<channel>" when not web]
                                               -> the row's metrics, packed (float64s: VISITOR_METRICS, GOAL_METRICS)
    vitrina:{<site>}:totals:<dimension> hash   "<campaign>\\0<variation>\\0<goal>\\0<value>" -> the row's metrics, packed
    vitrina:{<site>}:exclusions        hash    reason -> events not counted
    vitrina:{<site>}:rejections        hash    reason -> events refused
    vitrina:{<site>}:days:<day>        hash    "<metric>\\0<campaign>\\0<variation>\\0<goal>" -> visitors or conversions counted that day
                                               (every channel)
    vitrina:{<site>}:days              set     every day that has a daily hash (YYYY-MM-DD, site time zone)
    vitrina:{user:<email>}             hash    password_hash, created_at, sessions_epoch of a workspace user
    vitrina:{user:<email>}:sites       hash    site -> role of that user
    vitrina:{<site>}:members           hash    email -> role
    vitrina:{<site>}:audit             list    audit entries (JSON), newest first
    vitrina:{<site>}:catalog           zset    every product id, score 0 (id order, for paging)
    vitrina:{<site>}:p:<id>            string  one product's JSON (a key per product: no giant key)
    vitrina:{<site>}:catalog:mark:<m>  zset    ids stored by a running full import (dropped at its end)
    vitrina:{<site>}:interactions      stream  ts, who, basket, action, items (MAXLEN ~ interactions_maxlen)
    vitrina:{<site>}:rk:<name>         string  one ranking's JSON (a key per item and list)
    vitrina:{<site>}:rk                set     names of the current rankings (rk-building while written)
    vitrina:{<site>}:recs              hash    imports_at, signals_at, built_at
    vitrina:{<site>}:merchandising     string  merchandising rules JSON
    vitrina:{<site>}:features          stream  id, visitor, ts, kind, goal, body: feature vectors (MAXLEN ~ FEATURE_ROWS_KEPT)
    vitrina:{<site>}:models            hash    goal -> model report JSON
    vitrina:{<site>}:pa:<id>:<hour>    hash    views, purchases: distinct visitors that hour (expires)
    vitrina:{<site>}:ph:<hour>         set     "<action>\\0<who>\\0<id>" counted that hour (expires)
    vitrina:{<site>}:identity          string  identity record JSON: customer-key salt, secret seeds
    vitrina:{<site>}:customers         zset    every customer key, score 0 (key order)
    vitrina:{<site>}:cu:<key>          string  one customer's JSON (attributes, a key per customer)
    vitrina:{<site>}:customers:mark:<m> zset   keys stored by a running full import
    vitrina:{<site>}:crm-schema        string  CRM attribute statistics JSON
    vitrina:{<site>}:links:<key>       set     visitor ids identified as that customer
    vitrina:{<site>}:vlinks:<visitor>  set     customer keys that visitor was identified as
    vitrina:lock:<name>                string  the holder (PX ttl)

The stream is the raw event log for export and replay; it is trimmed approximately to
`stream_maxlen` entries per site (default one million), oldest first. Results never read it:
they read the totals hashes, folded at write time with the same float64 arithmetic as the
SQLite store (Lua numbers are doubles, stored as doubles), so both backends give identical
counters for the same events.

Retention (docs/DESIGN.md "Retention"): an event id is remembered for at least `dedupe_window_s`
(default 7 days, VITRINA_DEDUPE_DAYS): the ids live in DEDUPE_BUCKETS + 1 time buckets, the
newest taking new ids, each expiring DEDUPE_BUCKETS bucket widths after it ends; collect refuses
events whose `ts` is older than that window allows (server/events/batch.py), so a retry is never
counted twice. A visitor's hash expires `visitor_ttl_s` (default 400 days, VITRINA_VISITOR_DAYS,
the lifetime of the browser's visitor id) after their last recorded event.
"""
import json
import logging
import re
import struct
import threading
import time

import redis
import redis.cluster
from redis.backoff import NoBackoff
from redis.client import NEVER_DECODE
from redis.retry import Retry

from .base import (
    ACTIVITY_ACTIONS,
    ACTIVITY_HOURS,
    COUNTER_METRICS,
    DEDUPE_BUCKETS,
    DEDUPE_WINDOW_S,
    DEFAULT_KEY_NAME,
    FEATURE_ROWS_KEPT,
    FLOAT_METRICS,
    SLICE_DIMENSIONS,
    STORE_TIMEOUT_S,
    VERSION_TOKEN_MAX_AGE_S,
    VISITOR_TTL_S,
    WEB,
    ApiKey,
    KeyExists,
    SiteExists,
    Store,
    User,
    UserExists,
    activity_hits,
    in_channel,
    legacy_key_name,
    merge_channels,
    with_covariate_lists,
)

log = logging.getLogger(__name__)
CHANNEL = "vitrina:published"
LISTEN_POLL_S = 1.0  # the version watch looks at its stop flag this often

STREAM_MAXLEN = 1_000_000
SCHEMA_KEY, SCHEMA_VERSION = "vitrina:schema", 3
LEGACY_KEY_PREFIX, LEGACY_KEY_SUFFIX = "vitrina:{key:", "}:site"  # before keys had names: string -> site
SEP = "\0"
DIMENSION_INDEX = {dimension: n for n, dimension in enumerate(SLICE_DIMENSIONS, 1)}  # KEYS[5 + n] in RECORD_EVENTS
FIRST_DAY_KEY = 6 + len(SLICE_DIMENSIONS)  # KEYS index (from 1) of the first daily hash in RECORD_EVENTS
STREAM_ID_RE = re.compile(r"[0-9]{1,20}-[0-9]{1,20}\Z")


def _stream_id(text):
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


_compact = json.JSONEncoder(separators=(",", ":")).encode

# KEYS: the key's record   ARGV: last_used_at. A revoked key (record deleted) stays deleted.
TOUCH_KEY = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'last_used_at', ARGV[1]) end
"""

# KEYS: latest, versions, version:<n>   ARGV: n, payload, signature, published_at, meta ("" = none)
# Stores version n only if it is exactly the next one; otherwise returns 0 and the caller retries.
ADD_VERSION = """
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if last + 1 ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[3], 'payload', ARGV[2], 'signature', ARGV[3], 'published_at', ARGV[4])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[3], 'meta', ARGV[5]) end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""

ADD_REVISION = """
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if last + 1 ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[2], 'version', ARGV[2], 'payload', ARGV[3], 'signature', ARGV[4], 'made_at', ARGV[5])
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""

# Event ids recorded lately, for idempotence within the dedupe window: dedupe(legacy, first, last,
# expire_at) returns new_id(id), true when no bucket (KEYS[first..last], newest first) nor the set
# from before buckets (`legacy`) has the id, which then joins the newest bucket; that bucket expires
# at `expire_at` (ms since 1970). Buckets that do not exist are left out once per call.
DEDUPE = r"""
local function dedupe(legacy, first, last, expire_at)
  local older, newest, added = {}, KEYS[first], false
  if redis.call('EXISTS', legacy) == 1 then older[1] = legacy end
  for k = first + 1, last do
    if redis.call('EXISTS', KEYS[k]) == 1 then older[#older + 1] = KEYS[k] end
  end
  return function(id)
    if redis.call('SADD', newest, id) == 0 then return false end
    for _, key in ipairs(older) do
      if redis.call('SISMEMBER', key, id) == 1 then
        redis.call('SREM', newest, id)
        return false
      end
    end
    if not added then redis.call('PEXPIREAT', newest, expire_at); added = true end
    return true
  end
end
"""

# Counter rows, packed: every counters hash (`totals`, `totals:<dimension>`) holds one field per
# row, "<campaign>\0<variation>\0<goal>" [+ "\0<channel>" or "\0<value>"], whose value is all the
# row's metrics as little-endian float64s end to end (Lua's struct.pack '<d...'; an integer count
# is exact as a double up to 2^53): VISITOR_METRICS for a visitors row (goal ""), GOAL_METRICS for
# a goal row. Binary rather than text: packing a row costs Redis a fifth of formatting it.
VISITOR_METRICS = tuple(m for m in COUNTER_METRICS if m == "visitors" or m.startswith(("pre_visitors", "pre_sum_", "pre_xx_")))
GOAL_METRICS = tuple(m for m in COUNTER_METRICS if m not in VISITOR_METRICS)
PACKED_ROWS = (VISITOR_METRICS, GOAL_METRICS)  # row kinds 1 and 2 in the scripts
ZERO_METRICS = {m: 0.0 if m in FLOAT_METRICS else 0 for m in COUNTER_METRICS}
PACKED = [(metrics, struct.Struct(f"<{len(metrics)}d")) for metrics in PACKED_ROWS]  # by goal row or not


def _lua_table(items):
    return "{" + ", ".join(items) + "}"


# Lua: the packed rows, and `tally(key, field, kind, deltas)` / `write_tallies()`, which fold a
# script's counter deltas into them: each hash is read once (HMGET) and written once (HSET) for
# the fields the script touched. `deltas` is one event's {metric index, delta, ...}, zeros left
# out (x + 0 == x, and no sum is ever -0); a field's deltas are added in the order tallied, each
# step a float64 addition, as SQLite adds them.
TALLY = r"""
local find, sub, format = string.find, string.sub, string.format
local CHUNK = 1000  -- fields per HMGET/HSET call (unpack has a stack limit)
local function hmget(key, fields)
  local values = {}
  for s = 1, #fields, CHUNK do
    local part = redis.call('HMGET', key, unpack(fields, s, math.min(s + CHUNK - 1, #fields)))
    for j = 1, #part do values[s + j - 1] = part[j] end
  end
  return values
end
local function hset(key, pairs_)
  for s = 1, #pairs_, 2 * CHUNK do
    redis.call('HSET', key, unpack(pairs_, s, math.min(s + 2 * CHUNK - 1, #pairs_)))
  end
end
""" + "\n".join([
    "local METRIC = " + _lua_table(_lua_table(f"{m} = {i}" for i, m in enumerate(ms, 1)) for ms in PACKED_ROWS),
    "local PACKING = " + _lua_table(f"'<{'d' * len(ms)}'" for ms in PACKED_ROWS),
    "local SIZE = " + _lua_table(str(len(ms)) for ms in PACKED_ROWS),
    "local ZERO = " + _lua_table(_lua_table(["0"] * len(ms)) for ms in PACKED_ROWS)]) + r"""
-- per hash (in first-touch order): its fields (first-touch order) and rows, field -> {kind, deltas...}
local tallied, fields_of, rows_of = {}, {}, {}
local function tally(key, field, kind, deltas)
  local rows = rows_of[key]
  if rows == nil then rows = {}; rows_of[key] = rows; fields_of[key] = {}; tallied[#tallied + 1] = key end
  local row = rows[field]
  if row == nil then
    rows[field] = {kind, deltas}
    local fields = fields_of[key]
    fields[#fields + 1] = field
  else
    row[#row + 1] = deltas
  end
end
local function write_tallies()
  local pack, unpack_ = struct.pack, struct.unpack
  for k = 1, #tallied do
    local key = tallied[k]
    local fields, rows = fields_of[key], rows_of[key]
    local current, out = hmget(key, fields), {}
    for j = 1, #fields do
      local row = rows[fields[j]]
      local kind = row[1]
      local c = current[j] and {unpack_(PACKING[kind], current[j])} or {unpack(ZERO[kind])}
      for r = 2, #row do
        local deltas = row[r]
        for i = 1, #deltas, 2 do c[deltas[i]] = c[deltas[i]] + deltas[i + 1] end
      end
      out[2 * j - 1] = fields[j]
      out[2 * j] = pack(PACKING[kind], unpack(c, 1, SIZE[kind]))
    end
    hset(key, out)
  end
end
"""

# KEYS: seen (from before buckets), events, totals, visitor, days, the totals of each of
# SLICE_DIMENSIONS, the daily hash of each day the batch names, then the dedupe buckets, newest first
# ARGV: visitor_id, maxlen, events, bodies, KEYS index of the newest bucket, expire_at of the newest
# bucket (ms), the visitor's time to live (ms). `events` holds 11 fields per event, each ended by a NUL:
# id, type, campaign|goal, variation ("" = holdout)|value, order id ("" = none), the one campaign
# a conversion belongs to ("" = every campaign of the visitor), channel ("" = web), slices,
# covariates, length of the event's JSON body, index in KEYS of its day's daily hash ("" for none);
# `bodies` is those bodies end to end. (Four arguments rather than eleven per event: packing each
# argument costs the Python client more than these few string.find calls cost Redis.)
# An assignment is stored as its variation, followed by NUL and its channel when that is not web;
# a counter row of another channel than web has the channel as a fourth part of its field (daily
# counters and slice counters count every channel: only web exposures carry slices).
# An exposure's slices are "<n>\31<value>" joined by "\30" (n: 1-based index of the dimension, its
# hash KEYS[5 + n]); its covariates the integers joined by ","; both "" when it has none. They are
# kept with the assignment ("s\0<campaign>", "x\0<campaign>") for the visitor's later conversions.
# Returns how many events were new.
#
# Redis work per batch does not grow with the visitor's campaigns x conversions: after one SADD
# and one XADD per event, the visitor hash is read once (HGETALL, or HMGET of the exposed
# campaigns when the batch has no conversion), assignments and revenues are folded in Lua
# tables, each event's deltas computed once for the campaign's row and each of its slices' rows
# (TALLY), each totals hash read once and written once, one field per row touched.
RECORD_EVENTS = DEDUPE + TALLY + r"""
redis.replicate_commands()  -- Redis 5/6: writes after XADD '*' (non-deterministic); a no-op since 7
local seen, events, counters, visitor = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local new_id = dedupe(seen, tonumber(ARGV[5]), #KEYS, ARGV[6])
local vid, maxlen, meta, bodies = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local function fmt(x) return format('%.17g', x) end
local V, G = METRIC[1], METRIC[2]
local PRE_SUM, PRE_XX, PRE_CONV, PRE_REV = {}, {}, {}, {}  -- metric index by covariate (from 1)
for i = 1, 32 do
  if not V['pre_sum_' .. (i - 1)] then break end
  PRE_SUM[i], PRE_CONV[i], PRE_REV[i], PRE_XX[i] = V['pre_sum_' .. (i - 1)], G['pre_conv_' .. (i - 1)], G['pre_rev_' .. (i - 1)], {}
  for j = i, 32 do PRE_XX[i][j] = V['pre_xx_' .. (i - 1) .. '_' .. (j - 1)] end
end
local function push(deltas, metric, delta)
  if delta ~= 0 then deltas[#deltas + 1] = metric; deltas[#deltas + 1] = delta end
end
local function split(text, sep)  -- plain split; "" gives {}
  local parts, p = {}, 1
  if text == nil or text == '' then return parts end
  while true do
    local q = find(text, sep, p, true)
    if not q then parts[#parts + 1] = sub(text, p); return parts end
    parts[#parts + 1] = sub(text, p, q - 1)
    p = q + 1
  end
end
local parsed_slices, parsed_covariates = {}, {}  -- by text: a visitor's campaigns mostly share theirs
local function slices_of(text)  -- {{hash key, value}, ...} (read only)
  local out = parsed_slices[text or '']
  if out then return out end
  out = {}
  for _, part in ipairs(split(text, '\30')) do
    local cut = find(part, '\31', 1, true)
    out[#out + 1] = {KEYS[5 + tonumber(sub(part, 1, cut - 1))], sub(part, cut + 1)}
  end
  parsed_slices[text or ''] = out
  return out
end
local function covariates_of(text)  -- (read only)
  local out = parsed_covariates[text or '']
  if out then return out end
  out = {}
  for _, x in ipairs(split(text, ',')) do out[#out + 1] = tonumber(x) end
  parsed_covariates[text or ''] = out
  return out
end
-- the new events (by id, idempotence) go to the stream; kinds, names, args... keep their order
local kinds, names, args, orders, onlys, channels, slices, pres, days, converts = {}, {}, {}, {}, {}, {}, {}, {}, {}, false
local p, b = 1, 1
while p <= #meta do
  local q1 = find(meta, '\0', p, true)
  local q2 = find(meta, '\0', q1 + 1, true)
  local q3 = find(meta, '\0', q2 + 1, true)
  local q4 = find(meta, '\0', q3 + 1, true)
  local q5 = find(meta, '\0', q4 + 1, true)
  local q6 = find(meta, '\0', q5 + 1, true)
  local q7 = find(meta, '\0', q6 + 1, true)
  local q8 = find(meta, '\0', q7 + 1, true)
  local q9 = find(meta, '\0', q8 + 1, true)
  local q10 = find(meta, '\0', q9 + 1, true)
  local q11 = find(meta, '\0', q10 + 1, true)
  local id, kind, length = sub(meta, p, q1 - 1), sub(meta, q1 + 1, q2 - 1), tonumber(sub(meta, q9 + 1, q10 - 1))
  if new_id(id) then
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'id', id, 'visitor', vid, 'type', kind,
               'body', sub(bodies, b, b + length - 1))
    local n = #kinds + 1
    kinds[n], names[n], args[n] = kind, sub(meta, q2 + 1, q3 - 1), sub(meta, q3 + 1, q4 - 1)
    orders[n], onlys[n] = sub(meta, q4 + 1, q5 - 1), sub(meta, q5 + 1, q6 - 1)
    channels[n] = sub(meta, q6 + 1, q7 - 1)
    slices[n], pres[n] = sub(meta, q7 + 1, q8 - 1), sub(meta, q8 + 1, q9 - 1)
    days[n] = tonumber(sub(meta, q10 + 1, q11 - 1))
    if kind ~= 'exposure' then converts = true end
  end
  p, b = q11 + 1, b + length
end
local fresh = #kinds
if fresh == 0 then return 0 end

-- the visitor hash, as far as this batch needs it: field -> value (false or nil when absent)
-- assigned: {campaign, variation, slices, covariates, counter suffix of its channel} in hash
-- order, then new ones
local state, assigned = {}, {}
local function suffix(channel) return channel == '' and '' or '\0' .. channel end
if converts then
  local all = redis.call('HGETALL', visitor)
  for j = 1, #all, 2 do state[all[j]] = all[j + 1] end
  for j = 1, #all, 2 do
    if sub(all[j], 1, 2) == 'a\0' then
      local campaign, value = sub(all[j], 3), all[j + 1]
      local cut = find(value, '\0', 1, true)
      local variation, tail = value, ''
      if cut then variation, tail = sub(value, 1, cut - 1), sub(value, cut) end
      assigned[#assigned + 1] = {campaign, variation, slices_of(state['s\0' .. campaign]),
                                 covariates_of(state['x\0' .. campaign]), tail}
    end
  end
else
  local fields = {}
  for n = 1, fresh do fields[n] = 'a\0' .. names[n] end
  local values = hmget(visitor, fields)
  for j = 1, #fields do state[fields[j]] = values[j] end
end

local written, wrote = {}, {}      -- visitor fields to write back, in first-write order
local function put(field, value)
  if not wrote[field] then wrote[field] = true; written[#written + 1] = field end
  state[field] = value
end
local daily, days_touched = {}, {}  -- KEYS index of a daily hash -> {fields, increments}, in first-touch order
local function dincr(day, field)
  if not day then return end
  local d = daily[day]
  if d == nil then d = {fields = {}, counts = {}}; daily[day] = d; days_touched[#days_touched + 1] = day end
  if d.counts[field] == nil then d.fields[#d.fields + 1] = field; d.counts[field] = 0 end
  d.counts[field] = d.counts[field] + 1
end
-- one event's deltas to the campaign's row (of the assignment's channel: `tail`) and to the
-- same row in each of the visitor's slices
local function bump(campaign, variation, goal, tail, slices_, kind, deltas)
  local row = campaign .. '\0' .. variation .. '\0' .. goal
  tally(counters, row .. tail, kind, deltas)
  for i = 1, #slices_ do tally(slices_[i][1], row .. '\0' .. slices_[i][2], kind, deltas) end
end

for n = 1, fresh do
  local name, arg = names[n], args[n]
  if kinds[n] == 'exposure' then
    -- the first variation recorded for (visitor, campaign) wins, with its slices and covariates
    local field = 'a\0' .. name
    if not state[field] then
      local tail = suffix(channels[n])
      put(field, arg .. tail)
      if slices[n] ~= '' then put('s\0' .. name, slices[n]) end
      if pres[n] ~= '' then put('x\0' .. name, pres[n]) end
      local x = covariates_of(pres[n])
      assigned[#assigned + 1] = {name, arg, slices_of(slices[n]), x, tail}
      local deltas = {V.visitors, 1}
      if #x > 0 then
        push(deltas, V.pre_visitors, 1)
        for i = 1, #x do
          push(deltas, PRE_SUM[i], x[i])
          for j = i, #x do push(deltas, PRE_XX[i][j], x[i] * x[j]) end
        end
      end
      bump(name, arg, '', tail, assigned[#assigned][3], 1, deltas)
      dincr(days[n], 'visitors\0' .. name .. '\0' .. arg .. '\0')
    end
  else
    -- a conversion counts for every campaign the visitor is assigned to now (or for the one it
    -- names); an order id the visitor already sent for this goal counts nothing
    local value, order, only = tonumber(arg), orders[n], onlys[n]
    local repeated = false
    if order ~= '' then
      local mark = 'd\0' .. name .. '\0' .. order
      repeated = state[mark] ~= nil and state[mark] ~= false
      if not repeated then put(mark, '1') end
    end
    local new_order = (order ~= '' and not repeated) and 1 or 0
    for _, a in ipairs(repeated and {} or assigned) do
      local own = 'r\0' .. a[1] .. '\0' .. name
      local before = state[own]
      -- A repeated conversion worth 0 and no new order changes nothing (x + 0 == x, after^2 - b^2
      -- == 0; no value here is ever -0, as every sum starts at +0): its row is left as it is.
      if (only == '' or only == a[1]) and not (before and value == 0 and new_order == 0) then
        local b = tonumber(before or '0')
        local after = b + value
        put(own, after)
        local deltas = {}
        if not before then push(deltas, G.conversions, 1) end
        push(deltas, G.revenue, value)
        push(deltas, G.revenue_sq, after * after - b * b)
        for i, x in ipairs(a[4]) do
          if not before then push(deltas, PRE_CONV[i], x) end
          push(deltas, PRE_REV[i], x * value)
        end
        local own_orders = 'o\0' .. a[1] .. '\0' .. name
        local ob = tonumber(state[own_orders] or '0')
        local oa = ob + new_order
        if new_order == 1 then
          put(own_orders, format('%d', oa))
          push(deltas, G.orders, 1)
          push(deltas, G.orders_sq, oa * oa - ob * ob)
        end
        if oa > 0 then push(deltas, G.revenue_orders, after * oa - b * ob) end
        bump(a[1], a[2], name, a[5], a[3], 2, deltas)
        if not before then dincr(days[n], 'conversions\0' .. a[1] .. '\0' .. a[2] .. '\0' .. name) end
      end
    end
  end
end

if #written > 0 then
  local out = {}
  for _, field in ipairs(written) do
    local value = state[field]
    out[#out + 1] = field
    out[#out + 1] = type(value) == 'number' and fmt(value) or value
  end
  hset(visitor, out)
end
write_tallies()
for _, day in ipairs(days_touched) do
  local d = daily[day]
  local current, out = hmget(KEYS[day], d.fields), {}
  for j, field in ipairs(d.fields) do
    out[#out + 1] = field
    out[#out + 1] = format('%d', tonumber(current[j] or '0') + d.counts[field])
  end
  hset(KEYS[day], out)
  redis.call('SADD', KEYS[5], sub(KEYS[day], #KEYS[5] + 2))
end
redis.call('PEXPIRE', visitor, ARGV[7])  -- from the visitor's last recorded event (a no-op without a hash)
return fresh
"""


# KEYS: a counters hash of layout 2 (a field per metric: "<metric>\0<row>" -> number), the totals
# hash its rows go to (packed). Moves every row, then deletes the old hash; returns its fields.
PACK_COUNTERS = TALLY + r"""
local old = redis.call('HGETALL', KEYS[1])
for j = 1, #old, 2 do
  local cut = find(old[j], '\0', 1, true)
  local row = sub(old[j], cut + 1)
  local q1 = find(row, '\0', 1, true)
  local q2 = find(row, '\0', q1 + 1, true)
  local q3 = find(row, '\0', q2 + 1, true) or #row + 1
  local kind = q3 > q2 + 1 and 2 or 1  -- a goal row, or the visitors row (goal "")
  local metric = METRIC[kind][sub(old[j], 1, cut - 1)]
  if metric then tally(KEYS[2], row, kind, {metric, tonumber(old[j + 1])}) end
end
write_tallies()
redis.call('DEL', KEYS[1])
return #old / 2
"""


# KEYS: seen (from before buckets), interactions, recs, orders, then the dedupe buckets, newest first
# ARGV: maxlen, now, expire_at of the newest bucket (ms), then 6 per row: key ts who basket action items
# Appends the rows whose key is new: an event id within the dedupe window (shared with collect's
# events), an imported order's "o:<order_id>" (which no event id can be) for ever, as an order
# history may be imported again at any time. Returns the positions (from 0) of the new rows.
RECORD_INTERACTIONS = DEDUPE + r"""
local new_id = dedupe(KEYS[1], 5, #KEYS, ARGV[3])
local legacy = redis.call('EXISTS', KEYS[1]) == 1
local new = {}
for i = 4, #ARGV, 6 do
  local key, fresh = ARGV[i], false
  if string.sub(key, 1, 2) == 'o:' then
    fresh = redis.call('SADD', KEYS[4], key) == 1 and not (legacy and redis.call('SISMEMBER', KEYS[1], key) == 1)
  else
    fresh = new_id(key)
  end
  if fresh then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'ts', ARGV[i + 1], 'who', ARGV[i + 2],
               'basket', ARGV[i + 3], 'action', ARGV[i + 4], 'items', ARGV[i + 5])
    new[#new + 1] = (i - 4) / 6
  end
end
if #new > 0 then redis.call('HSET', KEYS[3], 'signals_at', ARGV[2]) end
return new
"""

# KEYS: draft   ARGV: config, updated_at, expected etag. Stores the draft only if the current one's
# SHA-1 (store/base.py draft_etag) is the expected one; returns 1 when stored.
SAVE_DRAFT_IF = """
if redis.sha1hex(redis.call('HGET', KEYS[1], 'config') or '') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'config', ARGV[1], 'updated_at', ARGV[2])
return 1
"""

# KEYS: lock   ARGV: owner, ttl_ms. Takes a free lock, or extends one the owner holds.
ACQUIRE_LOCK = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS: lock   ARGV: owner
RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

INTERACTIONS_MAXLEN = 2_000_000
ACTIVITY_TTL_S = (ACTIVITY_HOURS + 1) * 3600  # an hour's activity keys outlive the window by an hour
CHUNK = 1000  # keys per MGET/DEL, members per ZADD/ZREM


def _chunks(items, size=CHUNK):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start:start + size]


def connect(url, timeout_s=STORE_TIMEOUT_S):
    """A redis-py client for redis://, rediss://, unix:// or redis+cluster:// URLs, bounded: a
    connect or a read waits timeout_s at most, a timeout is never retried (a stopped server would
    make every retry wait as long: redis-py's default is 10 retries), and a refused or dropped
    connection is retried once, at once (a pooled connection that a Redis restart closed)."""
    bounds = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s,
              "retry": Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,))}
    if url.startswith("redis+cluster://"):
        return redis.cluster.RedisCluster.from_url("redis://" + url[len("redis+cluster://"):], decode_responses=True,
                                                   **bounds)
    return redis.Redis.from_url(url, decode_responses=True, **bounds)


class _VersionWatch:
    def __init__(self, client):
        self.client = client
        self.generation = 0
        self._listener = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._pubsub = None

    def token(self):
        if self._listener is None:
            self._start()  # lazily: gunicorn forks workers after the app may have been made
        return self.generation, int(time.monotonic() / VERSION_TOKEN_MAX_AGE_S)

    def announce(self, site):
        try:
            self.client.publish(CHANNEL, site)
        except Exception as e:  # the memo's age bound still brings the version within a second
            log.warning("could not announce a new version of %s: %s", site, e)
        self.generation += 1  # this process at once

    def _start(self):
        with self._lock:
            if self._listener is None:
                self._listener = threading.Thread(target=self._listen, name="vitrina-version-watch", daemon=True)
                self._listener.start()

    def _listen(self):
        while not self._stopped.is_set():
            try:
                pubsub = self._pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                self.generation += 1  # anything published while we were not listening
                while not self._stopped.is_set():
                    # Polled rather than listen(): a quiet channel is no read timeout, and a stopped
                    # (SIGSTOP) server only makes the channel quiet, which the age bound covers.
                    if pubsub.get_message(timeout=LISTEN_POLL_S) is not None:
                        self.generation += 1
            except Exception as e:  # Redis away: the age bound covers the gap; try again soon
                log.debug("version watch reconnecting: %s", e)
                self._stopped.wait(1)

    def close(self):
        self._stopped.set()
        if self._pubsub is not None:
            try:
                self._pubsub.close()
            except Exception:  # closing a dead connection: nothing left to do
                pass


class RedisStore(Store):
    UNAVAILABLE = (OSError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                   redis.exceptions.ClusterError, redis.exceptions.TryAgainError, redis.exceptions.ReadOnlyError,
                   redis.exceptions.RedisClusterException)
    AWAY_ON = UNAVAILABLE

    def __init__(self, url, stream_maxlen=STREAM_MAXLEN, interactions_maxlen=INTERACTIONS_MAXLEN,
                 timeout_s=STORE_TIMEOUT_S, dedupe_window_s=DEDUPE_WINDOW_S, visitor_ttl_s=VISITOR_TTL_S):
        self.r = connect(url, timeout_s)
        self.stream_maxlen = stream_maxlen
        self.interactions_maxlen = interactions_maxlen
        # DEDUPE_BUCKETS widths cover the window: an id added at t is looked for until t + window
        self.bucket_ms = -(-int(dedupe_window_s * 1000) // DEDUPE_BUCKETS)
        self.visitor_ttl_ms = int(visitor_ttl_s * 1000)
        self._add_version = self.r.register_script(ADD_VERSION)
        self._add_revision = self.r.register_script(ADD_REVISION)
        self._record = self.r.register_script(RECORD_EVENTS)
        self._touch_key = self.r.register_script(TOUCH_KEY)
        self._record_interactions = self.r.register_script(RECORD_INTERACTIONS)
        self._acquire_lock = self.r.register_script(ACQUIRE_LOCK)
        self._release_lock = self.r.register_script(RELEASE_LOCK)
        self._save_draft_if = self.r.register_script(SAVE_DRAFT_IF)
        self._watch = _VersionWatch(self.r)
        self._upgraded = False

    @staticmethod
    def _k(site, name):
        return f"vitrina:{{{site}}}:{name}"

    def _dedupe(self, site):
        """(the site's dedupe bucket keys, newest first; when the newest expires, ms since 1970).
        A bucket outlives the last bucket that looks for its ids by a little (at most a minute):
        the clocks of the server nodes may differ that much."""
        width = self.bucket_ms
        newest = int(time.time() * 1000) // width
        keys = [self._k(site, f"seen:{(newest - n) * width}") for n in range(DEDUPE_BUCKETS + 1)]
        return keys, (newest + DEDUPE_BUCKETS + 1) * width + min(width, 60_000)

    @staticmethod
    def _key_record(key_hash):
        return f"vitrina:{{key:{key_hash}}}"

    # Upgrades of the layout, run before a process first reads or writes keys (not on start: a
    # worker must boot while Redis is away). Every step is idempotent, so processes running
    # them at once agree.
    def _upgrade(self):
        if self._upgraded:
            return
        version = int(self.r.get(SCHEMA_KEY) or 0)
        if version < 2:
            self._name_legacy_keys()
            self._expire_legacy_seen()
        if version < 3:
            self._pack_counters()
        if version < SCHEMA_VERSION:
            self.r.set(SCHEMA_KEY, SCHEMA_VERSION)
        self._upgraded = True

    def _pack_counters(self):
        """Layout 3: the counters hashes of layout 2 (`counters`, `slices:<dimension>`: a field per
        metric) become `totals` and `totals:<dimension>` (a field per row), each moved whole by
        one script, so processes upgrading at once move each hash once."""
        pack = self.r.register_script(PACK_COUNTERS)
        for old in list(self.r.scan_iter(match="vitrina:{*}:counters", count=1000, _type="hash")):
            pack(keys=[old, old[:-len("counters")] + "totals"])
        for old in list(self.r.scan_iter(match="vitrina:{*}:slices:*", count=1000, _type="hash")):
            at = old.rindex(":slices:")
            pack(keys=[old, old[:at] + ":totals:" + old[at + len(":slices:"):]])

    def _expire_legacy_seen(self):
        """The set of every event id from before the dedupe buckets: its order keys move to the
        site's orders set (kept for ever), then it expires like a bucket (looked up meanwhile)."""
        for seen in self.r.scan_iter(match="vitrina:{*}:seen", count=1000, _type="set"):
            orders = seen[:-len("seen")] + "orders"
            batch = []
            for member in self.r.sscan_iter(seen, match="o:*", count=1000):
                batch.append(member)
                if len(batch) == CHUNK:
                    self.r.sadd(orders, *batch)
                    batch = []
            if batch:
                self.r.sadd(orders, *batch)
            if self.r.pttl(seen) < 0:
                self.r.pexpire(seen, self.bucket_ms * (DEDUPE_BUCKETS + 1))

    def _name_legacy_keys(self):
        """Keys from before names and scopes become owner keys named `default` (a site's later
        ones `default-2`...)."""
        legacy = list(self.r.scan_iter(match=f"{LEGACY_KEY_PREFIX}*{LEGACY_KEY_SUFFIX}", count=1000))
        found = [(self.r.get(old), old[len(LEGACY_KEY_PREFIX):-len(LEGACY_KEY_SUFFIX)], old) for old in legacy]
        # in key-hash order within a site: Redis kept no creation time per key
        for site, key_hash, old in sorted(entry for entry in found if entry[0] is not None):
            record = self._key_record(key_hash)
            if not self.r.exists(record):
                n = 1
                while not (self.r.hsetnx(self._k(site, "keys"), legacy_key_name(n), key_hash)
                           or self.r.hget(self._k(site, "keys"), legacy_key_name(n)) == key_hash):
                    n += 1
                created = self.r.get(self._k(site, "site")) or repr(time.time())
                self.r.hset(record, mapping={"site": site, "name": legacy_key_name(n), "scope": "owner",
                                             "created_at": created})
            self.r.delete(old)

    # sites and keys
    def create_site(self, site, key_hash):
        self._upgrade()
        if not self.r.set(self._k(site, "site"), repr(time.time()), nx=True):
            raise SiteExists(site)
        try:
            self.add_key(site, DEFAULT_KEY_NAME, "owner", key_hash)
        except Exception:
            self.r.delete(self._k(site, "site"))  # as SQLite's rollback: no site without its key
            raise
        self.r.sadd("vitrina:sites", site)

    def add_key(self, site, name, scope, key_hash):
        self._upgrade()
        record = self._key_record(key_hash)
        if not self.r.hsetnx(record, "site", site):
            raise ValueError("this API key hash is already registered")
        if not self.r.hsetnx(self._k(site, "keys"), name, key_hash):
            self.r.delete(record)
            raise KeyExists(name)
        self.r.hset(record, mapping={"name": name, "scope": scope, "created_at": repr(time.time())})

    def key_for_hash(self, key_hash):
        self._upgrade()
        return self._api_key(self.r.hgetall(self._key_record(key_hash)))

    @staticmethod
    def _api_key(record):
        if not record.get("scope"):  # absent, or caught between its two writes in add_key
            return None
        last_used = record.get("last_used_at")
        return ApiKey(record["site"], record["name"], record["scope"], float(record["created_at"]),
                      None if last_used is None else float(last_used))

    def list_keys(self, site):
        self._upgrade()
        pipe = self.r.pipeline(transaction=False)
        for key_hash in self.r.hgetall(self._k(site, "keys")).values():
            pipe.hgetall(self._key_record(key_hash))
        keys = [key for key in map(self._api_key, pipe.execute()) if key is not None and key.site == site]
        return sorted(keys, key=lambda key: (key.created_at, key.name))

    def revoke_key(self, site, name):
        self._upgrade()
        key_hash = self.r.hget(self._k(site, "keys"), name)
        if key_hash is None:
            return False
        self.r.delete(self._key_record(key_hash))  # first: the key stops opening anything at once
        self.r.hdel(self._k(site, "keys"), name)
        return True

    def touch_key(self, key_hash, when):
        self._touch_key(keys=[self._key_record(key_hash)], args=[repr(float(when))])

    def site_exists(self, site):
        return self.r.exists(self._k(site, "site")) == 1

    def list_sites(self):
        return sorted(self.r.smembers("vitrina:sites"))

    # users, roles, audit
    @staticmethod
    def _user(email, part=""):
        return f"vitrina:{{user:{email}}}{part}"

    def create_user(self, email):
        if not self.r.hsetnx(self._user(email), "created_at", repr(time.time())):
            raise UserExists(email)
        self.r.hset(self._user(email), "sessions_epoch", 0)

    def get_user(self, email):
        record = self.r.hgetall(self._user(email))
        if not record.get("created_at"):
            return None
        return User(email, record.get("password_hash"), float(record["created_at"]), int(record.get("sessions_epoch", 0)))

    def set_password(self, email, password_hash):
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self._user(email), "password_hash", password_hash)
        pipe.hincrby(self._user(email), "sessions_epoch", 1)
        pipe.execute()

    def end_sessions(self, email):
        if not self.r.exists(self._user(email)):
            return None
        return self.r.hincrby(self._user(email), "sessions_epoch", 1)

    def set_role(self, site, email, role):
        self.r.hset(self._user(email, ":sites"), site, role)
        self.r.hset(self._k(site, "members"), email, role)

    def remove_role(self, site, email):
        self.r.hdel(self._user(email, ":sites"), site)
        return self.r.hdel(self._k(site, "members"), email) == 1

    def roles_of(self, email):
        return dict(sorted(self.r.hgetall(self._user(email, ":sites")).items()))

    def site_users(self, site):
        return sorted(self.r.hgetall(self._k(site, "members")).items())

    def add_audit(self, site, entry_json):
        self.r.lpush(self._k(site, "audit"), entry_json)

    def audit_log(self, site, limit=100):
        return self.r.lrange(self._k(site, "audit"), 0, limit - 1)

    # drafts and versions
    def save_draft(self, site, config_json, if_etag=None):
        if if_etag is None:
            self.r.hset(self._k(site, "draft"), mapping={"config": config_json, "updated_at": repr(time.time())})
            return True
        return self._save_draft_if(keys=[self._k(site, "draft")], args=[config_json, repr(time.time()), if_etag]) == 1

    def get_draft(self, site):
        return self.r.hget(self._k(site, "draft"), "config")

    def add_version(self, site, make_payload, meta=None):
        # Optimistic: build version last+1 and store it only if it is still the next one,
        # so numbers stay consecutive without gaps even when make_payload fails.
        while True:
            version = int(self.r.get(self._k(site, "latest")) or 0) + 1
            payload, signature, published_at = make_payload(version)
            keys = [self._k(site, "latest"), self._k(site, "versions"), self._k(site, f"version:{version}")]
            if self._add_version(keys=keys, args=[version, payload, signature, published_at, meta or ""]):
                return version

    def version_meta(self, site, versions):
        versions = list(dict.fromkeys(int(v) for v in versions))
        pipe = self.r.pipeline(transaction=False)
        for version in versions:
            pipe.hget(self._k(site, f"version:{version}"), "meta")
        return {v: meta for v, meta in zip(versions, pipe.execute()) if meta is not None}

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

    def add_revision(self, site, make_payload):
        while True:  # optimistic, as add_version
            revision = int(self.r.get(self._k(site, "revision")) or 0) + 1
            version, payload, signature, made_at = make_payload(revision)
            keys = [self._k(site, "revision"), self._k(site, f"revision:{revision}")]
            if self._add_revision(keys=keys, args=[revision, version, payload, signature, made_at]):
                return revision

    def get_revision(self, site, revision=None):
        if revision is None:
            revision = self.r.get(self._k(site, "revision"))
            if revision is None:
                return None
        version, payload, signature, made_at = self.r.hmget(
            self._k(site, f"revision:{int(revision)}"), ["version", "payload", "signature", "made_at"])
        return None if payload is None else (int(revision), int(version), payload, signature, made_at)

    def latest_revision(self, site):
        latest = self.r.get(self._k(site, "revision"))
        return None if latest is None else int(latest)

    # events
    def record_events(self, site, visitor_id, events):
        if not events:
            return 0
        self._upgrade()  # the counters' layout
        meta, bodies, day_keys, slice_texts = [], [], {}, {}
        for event in events:
            body = event.get("_json") or _compact({k: v for k, v in event.items() if not k.startswith("_")})
            slices = covariates = ""
            if event["type"] == "exposure":
                name, arg = event["campaign"], "" if event.get("holdout") else event["variation"]
                sliced = event.get("_slices") or ()
                slices = slice_texts.get(id(sliced))  # a batch's exposures often share one list (collect)
                if slices is None:
                    slices = slice_texts[id(sliced)] = "".join(f"{DIMENSION_INDEX[d]}\x1f{v}\x1e" for d, v in sliced)[:-1]
                covariates = "" if event.get("_pre") is None else ",".join(map(str, event["_pre"]))
            else:
                name, arg = event["goal"], repr(float(event.get("value") or 0.0))
            size = len(body) if body.isascii() else len(body.encode())
            channel = event.get("channel") or WEB
            day = event.get("_day")
            at = day_keys.setdefault(day, FIRST_DAY_KEY + len(day_keys)) if day else ""
            only = event.get("campaign", "") if event["type"] == "conversion" else ""
            meta.append(f"{event['id']}\0{event['type']}\0{name}\0{arg}\0{event.get('order_id') or ''}\0{only}\0"
                        f"{'' if channel == WEB else channel}\0{slices}\0{covariates}\0{size}\0{at}\0")
            bodies.append(body)
        meta = "".join(meta)
        if meta.count("\0") != 11 * len(events):
            raise ValueError("event ids, campaigns, variations, goals, channels and slices cannot contain NUL")
        buckets, expire_at = self._dedupe(site)
        keys = [self._k(site, "seen"), self._k(site, "events"), self._k(site, "totals"),
                self._k(site, f"visitor:{visitor_id}"), self._k(site, "days"),
                *(self._k(site, f"totals:{d}") for d in SLICE_DIMENSIONS),
                *(self._k(site, f"days:{day}") for day in day_keys), *buckets]
        return int(self._record(keys=keys, args=[visitor_id, self.stream_maxlen, meta, "".join(bodies),
                                                 len(keys) - len(buckets) + 1, expire_at, self.visitor_ttl_ms]))

    def counters(self, site, channel=None):
        return [with_covariate_lists(row) for row in merge_channels(in_channel(self.labelled_counters(site), channel))]

    def labelled_counters(self, site):
        return self._counter_rows(self._k(site, "totals"), "channel")

    def slice_counters(self, site, dimension):
        if dimension not in DIMENSION_INDEX:
            raise ValueError(f"unknown dimension {dimension!r}")
        return [with_covariate_lists(row) for row in self._counter_rows(self._k(site, f"totals:{dimension}"), "value")]

    def _counter_rows(self, key, fourth):
        """The flat counter rows of a totals hash (packed rows, RECORD_EVENTS); `fourth` names the
        fourth part of its fields: "channel" (the campaigns' totals: the assignment's label, web
        when absent) or "value" (a results breakdown slice's)."""
        self._upgrade()
        rows = []
        for field, packed in self.r.execute_command("HGETALL", key, **{NEVER_DECODE: []}).items():
            campaign, variation, goal, *rest = field.decode().split(SEP)
            metrics, packing = PACKED[bool(goal)]
            row = {"campaign": campaign, "variation": variation or None, "goal": goal or None,
                   fourth: rest[0] if rest else WEB, **ZERO_METRICS}
            for metric, number in zip(metrics, packing.unpack(packed)):
                row[metric] = number if metric in FLOAT_METRICS else int(number)
            rows.append(row)
        return rows

    def count_exclusions(self, site, counts):
        self._add_counts(self._k(site, "exclusions"), counts)

    def exclusions(self, site):
        return {k: int(v) for k, v in sorted(self.r.hgetall(self._k(site, "exclusions")).items())}

    def events_after(self, site, cursor, limit):
        if cursor is not None and not STREAM_ID_RE.match(cursor):
            raise ValueError(f"{cursor!r} is not a stream position")
        key = self._k(site, "events")
        entries = self.r.xrange(key, "(" + cursor if cursor else "-", "+", count=limit)
        events = [{"cursor": entry_id, "id": fields["id"], "visitor_id": fields["visitor"], "type": fields["type"],
                   "received_at": int(entry_id.partition("-")[0]) / 1000, "body": fields["body"]}
                  for entry_id, fields in entries]
        return events, self._gone_after(key, cursor)

    def _gone_after(self, key, cursor):
        """Whether entries after `cursor` were trimmed (MAXLEN drops the oldest: the stream has
        added more than it holds and its first entry is past the cursor) or deleted (erasure)."""
        try:
            info = self.r.xinfo_stream(key)
        except redis.exceptions.ResponseError:  # no stream yet
            return False
        after = _stream_id(cursor) if cursor else (0, 0)
        trimmed = info["entries-added"] > info["length"] and _stream_id(info["recorded-first-entry-id"]) > after
        return trimmed or _stream_id(info.get("max-deleted-entry-id") or "0-0") > after

    def daily_counters(self, site, campaign):
        days = sorted(self.r.smembers(self._k(site, "days")))
        pipe = self.r.pipeline(transaction=False)
        for day in days:
            pipe.hgetall(self._k(site, f"days:{day}"))
        rows = []
        for day, fields in zip(days, pipe.execute()):
            found = {}
            for field, value in fields.items():
                metric, name, variation, goal = field.split(SEP)
                if name == campaign:
                    row = found.setdefault((variation, goal), {"day": day, "variation": variation or None,
                                                               "goal": goal or None, "visitors": 0, "conversions": 0})
                    row[metric] = int(value)
            rows += found.values()
        return rows

    def count_rejections(self, site, counts):
        self._add_counts(self._k(site, "rejections"), counts)

    def _add_counts(self, key, counts):
        pipe = self.r.pipeline(transaction=False)
        for reason, n in counts.items():
            pipe.hincrby(key, reason, n)
        pipe.execute()

    def rejections(self, site):
        return {k: int(v) for k, v in sorted(self.r.hgetall(self._k(site, "rejections")).items())}

    # identity
    def get_identity(self, site):
        return self.r.get(self._k(site, "identity"))

    def put_identity(self, site, record_json, if_absent=False):
        return bool(self.r.set(self._k(site, "identity"), record_json, nx=if_absent))

    def upsert_customers(self, site, customers, mark=None):
        return self._upsert_indexed(site, "customers", "cu:", customers, mark)

    def get_customers(self, site, keys):
        return self._values(site, "cu:", keys)

    def delete_customers_unmarked(self, site, mark):
        return self._delete_unmarked(site, "customers", "cu:", mark)

    def iter_customers(self, site):
        after = ""
        while True:
            keys = self.r.zrangebylex(self._k(site, "customers"), f"({after}" if after else "-", "+", start=0, num=1000)
            found = self.get_customers(site, keys)
            yield from ((key, found[key]) for key in keys if key in found)
            if len(keys) < 1000:
                return
            after = keys[-1]

    def count_customers(self, site):
        return self.r.zcard(self._k(site, "customers"))

    def save_crm_schema(self, site, schema_json):
        self.r.set(self._k(site, "crm-schema"), schema_json)

    def get_crm_schema(self, site):
        return self.r.get(self._k(site, "crm-schema"))

    def link_visitor(self, site, customer_key, visitor_id):
        pipe = self.r.pipeline(transaction=False)
        pipe.sadd(self._k(site, f"links:{customer_key}"), visitor_id)
        pipe.sadd(self._k(site, f"vlinks:{visitor_id}"), customer_key)
        pipe.execute()

    def linked_visitors(self, site, customer_key):
        return sorted(self.r.smembers(self._k(site, f"links:{customer_key}")))

    def erase_units(self, site, customer_keys, units):
        units, customer_keys = list(dict.fromkeys(units)), list(dict.fromkeys(customer_keys))
        erased = {"customers": self._delete_indexed(site, "customers", "cu:", customer_keys), "events": 0,
                  "interactions": 0}
        for customer_key in customer_keys:
            for visitor_id in self.r.smembers(self._k(site, f"links:{customer_key}")):
                self.r.srem(self._k(site, f"vlinks:{visitor_id}"), customer_key)
            self.r.delete(self._k(site, f"links:{customer_key}"))
        for unit in units:
            for customer_key in self.r.smembers(self._k(site, f"vlinks:{unit}")):
                self.r.srem(self._k(site, f"links:{customer_key}"), unit)
            self.r.delete(self._k(site, f"vlinks:{unit}"), self._k(site, f"visitor:{unit}"))
        # the streams are scanned whole (an erasure is rare); the dedupe buckets keep the event
        # ids, so a retry of an erased event is not counted again
        erased["events"] = self._delete_entries(site, "events", "visitor", set(units))
        whos = {f"{kind}:{unit}" for unit in units for kind in ("v", "c")}
        erased["interactions"] = self._delete_entries(site, "interactions", "who", whos)
        self._delete_entries(site, "features", "visitor", set(units))
        self._forget_activity(site, whos)
        return erased

    def _forget_activity(self, site, whos):
        """Who was counted in live activity, out of every hourly set that may still exist (an hour
        is written while in the window and lives ACTIVITY_TTL_S after); the counts stay."""
        last = int(time.time() // 3600)
        for hour in range(last - 2 * ACTIVITY_HOURS - 2, last + 1):
            key = self._k(site, f"ph:{hour}")
            doomed = [member for member in self.r.sscan_iter(key, count=1000) if member.split(SEP)[1] in whos]
            if doomed:
                self.r.srem(key, *doomed)

    def _delete_entries(self, site, stream, field, values):
        """XDEL every entry of the site's stream whose `field` is one of `values`; returns how many."""
        key, start, deleted = self._k(site, stream), "-", 0
        while values:
            entries = self.r.xrange(key, start, "+", count=10_000)
            doomed = [entry_id for entry_id, fields in entries if fields.get(field) in values]
            if doomed:
                deleted += self.r.xdel(key, *doomed)
            if len(entries) < 10_000:
                break
            start = "(" + entries[-1][0]
        return deleted

    # catalogue
    def upsert_products(self, site, products, mark=None):
        return self._upsert_indexed(site, "catalog", "p:", products, mark)

    def _upsert_indexed(self, site, index, prefix, rows, mark):
        """SET a key `prefix + id` per (id, json) row, and add the ids to the sorted set `index`
        (and to `<index>:mark:<mark>` for a full import). Returns how many."""
        rows = list(rows)
        pipe = self.r.pipeline(transaction=False)
        for part in _chunks(rows):
            self._set_many(pipe, {self._k(site, prefix + key): body for key, body in part})
            members = {key: 0 for key, _ in part}
            pipe.zadd(self._k(site, index), members)
            if mark is not None:
                pipe.zadd(self._k(site, f"{index}:mark:{mark}"), members)
        pipe.execute()
        return len(rows)

    def _set_many(self, pipe, values):
        """SET each key: one MSET (keys of one site share a slot), except in a cluster pipeline,
        which refuses multi-key commands."""
        if isinstance(self.r, redis.cluster.RedisCluster):
            for key, value in values.items():
                pipe.set(key, value)
        else:
            pipe.mset(values)

    def delete_products(self, site, ids):
        return self._delete_indexed(site, "catalog", "p:", ids)

    def _delete_indexed(self, site, index, prefix, ids):
        deleted = 0
        for part in _chunks(dict.fromkeys(ids)):
            deleted += self.r.zrem(self._k(site, index), *part)
            self.r.delete(*(self._k(site, prefix + key) for key in part))
        return deleted

    def delete_products_unmarked(self, site, mark):
        return self._delete_unmarked(site, "catalog", "p:", mark)

    def _delete_unmarked(self, site, index, prefix, mark):
        mark_key = self._k(site, f"{index}:mark:{mark}")
        deleted = self._delete_indexed(site, index, prefix, self.r.zdiff([self._k(site, index), mark_key]))
        self.r.delete(mark_key)
        return deleted

    def _values(self, site, prefix, names):
        """{name: value} of the existing keys `prefix + name` of the site."""
        found = {}
        for part in _chunks(dict.fromkeys(names)):
            for name, value in zip(part, self.r.mget([self._k(site, prefix + name) for name in part])):
                if value is not None:
                    found[name] = value
        return found

    def get_products(self, site, ids):
        return self._values(site, "p:", ids)

    def list_products(self, site, after="", limit=100):
        ids = self.r.zrangebylex(self._k(site, "catalog"), f"({after}" if after else "-", "+", start=0, num=limit)
        found = self.get_products(site, ids)
        return [(pid, found[pid]) for pid in ids if pid in found]

    def count_products(self, site):
        return self.r.zcard(self._k(site, "catalog"))

    # interactions
    def record_interactions(self, site, rows):
        fresh = []
        for part in _chunks(rows, 500):
            buckets, expire_at = self._dedupe(site)
            keys = [self._k(site, "seen"), self._k(site, "interactions"), self._k(site, "recs"),
                    self._k(site, "orders"), *buckets]
            args = [self.interactions_maxlen, repr(time.time()), expire_at]
            for key, ts, who, basket, action, items in part:
                args += [key, repr(float(ts)), who, basket, action, items]
            fresh += [part[int(i)] for i in self._record_interactions(keys=keys, args=args)]
        self._count_activity(site, activity_hits(fresh, time.time()))
        return len(fresh)

    def _count_activity(self, site, hits):
        """A set per hour of the (action, visitor, product) already counted, then a hash per product
        and hour of its counts; both expire once out of the window, so nothing is pruned by hand."""
        for part in _chunks(hits):
            pipe = self.r.pipeline(transaction=False)
            for hour, action, who, product_id in part:
                pipe.sadd(self._k(site, f"ph:{hour}"), f"{action}{SEP}{who}{SEP}{product_id}")
            for hour in {hour for hour, *_ in part}:
                pipe.expire(self._k(site, f"ph:{hour}"), ACTIVITY_TTL_S)
            new = pipe.execute()[:len(part)]
            pipe = self.r.pipeline(transaction=False)
            for (hour, action, _, product_id), counted in zip(part, new):
                if counted:
                    pipe.hincrby(self._k(site, f"pa:{product_id}:{hour}"), ACTIVITY_ACTIONS[action], 1)
                    pipe.expire(self._k(site, f"pa:{product_id}:{hour}"), ACTIVITY_TTL_S)
            pipe.execute()

    def product_activity(self, site, product_id, now):
        last = int(now // 3600)
        pipe = self.r.pipeline(transaction=False)
        for hour in range(last - ACTIVITY_HOURS + 1, last + 1):
            pipe.hmget(self._k(site, f"pa:{product_id}:{hour}"), ["views", "purchases"])
        buckets = pipe.execute()
        return {"views_24h": sum(int(v or 0) for v, _ in buckets),
                "purchases_24h": sum(int(p or 0) for _, p in buckets)}

    def interactions(self, site, since_ts):
        key, start = self._k(site, "interactions"), "-"
        while True:
            entries = self.r.xrange(key, start, "+", count=10_000)
            for _, fields in entries:
                ts = float(fields["ts"])
                if ts >= since_ts:
                    yield ts, fields["who"], fields["basket"], fields["action"], fields["items"]
            if len(entries) < 10_000:
                return
            start = "(" + entries[-1][0]

    # predictive targeting
    def record_features(self, site, visitor_id, rows):
        pipe = self.r.pipeline(transaction=False)
        for r in rows:
            pipe.xadd(self._k(site, "features"), {"id": r["id"], "visitor": visitor_id, "ts": r["ts"], "kind": r["kind"],
                                                  "goal": r["goal"] or "", "body": r["features"]},
                      maxlen=FEATURE_ROWS_KEPT, approximate=True)
        pipe.execute()

    def feature_rows(self, site, limit=FEATURE_ROWS_KEPT):
        entries = self.r.xrevrange(self._k(site, "features"), "+", "-", count=limit)
        return [{"id": f["id"], "visitor": f["visitor"], "ts": int(f["ts"]), "kind": f["kind"], "goal": f["goal"] or None,
                 "features": json.loads(f["body"])} for _, f in reversed(entries)]

    def save_model(self, site, goal, report_json):
        self.r.hset(self._k(site, "models"), goal, report_json)

    def model_reports(self, site):
        return dict(sorted(self.r.hgetall(self._k(site, "models")).items()))

    # rankings
    def write_rankings(self, site, rankings, built_at):
        names_key, fresh_key = self._k(site, "rk"), self._k(site, "rk-building")
        self.r.delete(fresh_key)
        batch = []
        for ranking in rankings:
            batch.append(ranking)
            if len(batch) == CHUNK:
                self._write_ranking_batch(site, fresh_key, batch)
                batch = []
        self._write_ranking_batch(site, fresh_key, batch)
        stale = self.r.sdiff([names_key, fresh_key])
        for part in _chunks(stale):
            self.r.delete(*(self._k(site, f"rk:{name}") for name in part))
        if self.r.exists(fresh_key):
            self.r.rename(fresh_key, names_key)
        else:
            self.r.delete(names_key)
        self.r.hset(self._k(site, "recs"), "built_at", repr(float(built_at)))

    def _write_ranking_batch(self, site, fresh_key, batch):
        if batch:
            pipe = self.r.pipeline(transaction=False)
            self._set_many(pipe, {self._k(site, f"rk:{name}"): body for name, body in batch})
            pipe.sadd(fresh_key, *(name for name, _ in batch))
            pipe.execute()

    def rankings(self, site, names):
        return self._values(site, "rk:", names)

    def touch_recs_inputs(self, site, kind):
        if kind not in ("imports", "signals"):
            raise ValueError(f"unknown input kind {kind!r}")
        self.r.hset(self._k(site, "recs"), f"{kind}_at", repr(time.time()))

    def recs_status(self, site):
        values = self.r.hmget(self._k(site, "recs"), ["imports_at", "signals_at", "built_at"])
        return {name: None if v is None else float(v) for name, v in zip(("imports_at", "signals_at", "built_at"), values)}

    def save_merchandising(self, site, rules_json):
        self.r.set(self._k(site, "merchandising"), rules_json)

    def get_merchandising(self, site):
        return self.r.get(self._k(site, "merchandising"))

    # locks
    def acquire_lock(self, name, owner, ttl_s):
        return self._acquire_lock(keys=[f"vitrina:lock:{name}"], args=[owner, max(1, int(ttl_s * 1000))]) == 1

    def release_lock(self, name, owner):
        return self._release_lock(keys=[f"vitrina:lock:{name}"], args=[owner]) == 1

    # serving
    def version_token(self):
        return self._watch.token(), self.outage.returns

    def announce_version(self, site):
        self._watch.announce(site)

    def hit_window(self, key, window, ttl_s):
        redis_key = f"{key}:{window}"
        pipe = self.r.pipeline(transaction=False)
        pipe.incr(redis_key)
        pipe.expire(redis_key, ttl_s)
        return pipe.execute()[0]

    def ping(self):
        return bool(self.r.ping())

    def close(self):
        """Close every connection (a cluster client keeps one pool per node)."""
        self._watch.close()
        if isinstance(self.r, redis.cluster.RedisCluster):
            for node in self.r.get_nodes():
                if node.redis_connection is not None:
                    node.redis_connection.connection_pool.disconnect()
        self.r.close()
