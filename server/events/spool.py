"""When the store is unreachable, accepted `collect` batches wait on local disk and are
replayed (verified and recorded, idempotently by event id) once it answers again.

One file per batch in VITRINA_SPOOL_DIR, its state in its name:

    <id>[~<tries>].batch                waiting (tries: failed replays so far)
    <id>[~<tries>]@<host>-<pid>.claimed  being replayed by that process (claimed by atomic rename)
    dead/<id>.batch                     set aside after MAX_TRIES failed replays

A replay round goes through the waiting batches oldest first. The store being unreachable
stops the round and keeps everything (no try counted); a batch that fails for any other reason
(a version that no longer verifies, a bug) counts a try and the round moves on to the next
one, so one bad batch never holds up the others. A claim whose process is gone (killed
mid-replay) is taken back at once on its host, and by any process after CLAIM_TIMEOUT_S."""
import hashlib
import json
import os
import re
import secrets
import socket
import threading
import time
from pathlib import Path

from flask import current_app

from server.events.collect import EventsRejected, count_rejections, ingest
from server.store import UNAVAILABLE

CLAIM_TIMEOUT_S = 60  # a claim older than this is taken back even from a process that seems alive
REPLAY_EVERY_S = 1.0
RETRY_DELAYS_S = (2, 10, 60, 300)  # wait after the 1st, 2nd... failed try; MAX_TRIES failures set it aside
MAX_TRIES = len(RETRY_DELAYS_S) + 1
DEAD_LETTER = "dead"
NAME_RE = re.compile(r"^(?P<id>\d+-\d+-[0-9a-f]+)(?:~(?P<tries>\d+))?(?:@(?P<host>[0-9a-f]+)-(?P<pid>\d+))?"
                     r"\.(?P<state>batch|claimed)\Z")
HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_thread_lock = threading.Lock()
_thread = None


def spool_dir(app=None):
    app = app or current_app
    return Path(app.config["VITRINA_SPOOL_DIR"])


def write_batch(folder, site, visitor_id, events, facts=None, customer=None):
    """Write one batch atomically (temp file + fsync + rename), with the request's facts (device
    type, country, exclusion: never its address); returns its path. `customer`: the verified
    customer key of its identity (checked before spooling: an identity may expire while the batch
    waits, the customer it named does not change)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns()}-{os.getpid()}-{secrets.token_hex(4)}"
    tmp = folder / f".{name}.tmp"
    with open(tmp, "w") as f:
        json.dump({"site": site, "visitor_id": visitor_id, "events": events, "facts": facts,
                   **({"customer": customer} if customer else {})}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / f"{name}.batch")
    return folder / f"{name}.batch"


def save(site, visitor_id, events, facts=None, customer=None):
    """Spool one batch and make sure a replayer runs."""
    write_batch(spool_dir(), site, visitor_id, events, facts, customer)
    _start_replayer(current_app._get_current_object())


def pending(app=None):
    """Batches waiting or being replayed (not those set aside)."""
    folder = spool_dir(app)
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if p.suffix in (".batch", ".claimed"))


def dead_letters(app=None):
    """Batches set aside after MAX_TRIES failed replays (kept: move one back to replay it)."""
    folder = spool_dir(app) / DEAD_LETTER
    return sum(1 for p in folder.iterdir() if p.suffix == ".batch") if folder.is_dir() else 0


def _name(batch_id, tries, claimer=None):
    tries_part = f"~{tries}" if tries else ""
    return f"{batch_id}{tries_part}@{claimer}.claimed" if claimer else f"{batch_id}{tries_part}.batch"


def _claim(path, batch_id, tries):
    claimed = path.with_name(_name(batch_id, tries, f"{HOST}-{os.getpid()}"))
    try:
        os.replace(path, claimed)  # atomic: of several processes, one wins the rename
    except FileNotFoundError:
        return None
    os.utime(claimed)
    return claimed


def _claimer_gone(match, path, now):
    if match["host"] == HOST:
        try:
            os.kill(int(match["pid"]), 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            pass
    try:
        return now - path.stat().st_mtime > CLAIM_TIMEOUT_S
    except FileNotFoundError:
        return False


def _take_back_orphans(folder, now):
    """Claims of processes gone (killed mid-replay) wait again, with a try counted: a batch that
    kills its replayer every time ends up set aside rather than killing them forever."""
    for path in folder.glob("*.claimed"):
        match = NAME_RE.match(path.name)
        if match and _claimer_gone(match, path, now):
            try:
                os.replace(path, path.with_name(_name(match["id"], int(match["tries"] or 0) + 1)))
            except FileNotFoundError:  # another process took it back first
                pass


def _due(path, tries, now):
    if not tries:
        return True
    try:
        return now - path.stat().st_mtime >= RETRY_DELAYS_S[min(tries, len(RETRY_DELAYS_S)) - 1]
    except FileNotFoundError:
        return False


def replay_once(app, ingest=ingest, limit=200, now=None):
    """Replay up to `limit` waiting batches (those due: a failed one waits RETRY_DELAYS_S) with
    ingest(site, visitor_id, events, facts, customer, probe=True); returns how many were recorded. Raises one of UNAVAILABLE when the store is still down: the batch it
    was replaying waits again, untouched, and so does every later one."""
    folder = spool_dir(app)
    if not folder.is_dir():
        return 0
    now = time.time() if now is None else now
    _take_back_orphans(folder, now)
    done = tried = 0
    for path in sorted(folder.glob("*.batch")):
        match = NAME_RE.match(path.name)
        tries = int(match["tries"] or 0) if match else 0
        if match is None or not _due(path, tries, now):
            continue
        if tried == limit:
            break
        claimed = _claim(path, match["id"], tries)
        if claimed is None:
            continue
        tried += 1
        try:
            batch = json.loads(claimed.read_text())
            site, visitor_id, events, facts = batch["site"], batch["visitor_id"], batch["events"], batch.get("facts")
            customer = batch.get("customer")
            if not (isinstance(site, str) and isinstance(events, list) and isinstance(facts, (dict, type(None)))
                    and isinstance(customer, (str, type(None)))):
                raise ValueError("not a spooled batch")
        except (OSError, ValueError, LookupError, TypeError) as e:  # unreadable: it will not get better
            _failed(app, claimed, match["id"], MAX_TRIES, repr(e))
            continue
        try:
            with app.app_context():
                # collect never probes an away store: this does; events are timed against their receipt
                ingest(site, visitor_id, events, facts, customer, probe=True, received_at=_received_at(match["id"]))
        except UNAVAILABLE:
            os.replace(claimed, path)  # the store is still down: everything waits for the next round
            raise
        except EventsRejected as e:
            if e.permanent:  # refused on verification, as it would be live: counted, dropped
                app.logger.warning("spooled batch %s refused: %s", path.name, e.problems[:3])
                with app.app_context():
                    count_rejections(site, e.counts())
                claimed.unlink()
                continue
            _failed(app, claimed, match["id"], tries + 1, e.problems[:3], site, len(events))
        except Exception as e:  # noqa: BLE001 -- whatever it is, it must not hold up the batches behind it
            _failed(app, claimed, match["id"], tries + 1, repr(e), site, len(events))
        else:
            claimed.unlink()
            done += 1
    return done


def _received_at(batch_id):
    """When the batch was spooled (seconds): its id begins with that time in nanoseconds."""
    return int(batch_id.split("-")[0]) / 1e9


def _failed(app, claimed, batch_id, tries, reason, site=None, events=0):
    """A try that failed for another reason than the store: wait and try again, or set aside."""
    if tries < MAX_TRIES:
        app.logger.warning("spooled batch %s failed (try %d of %d): %s", batch_id, tries, MAX_TRIES, reason)
        os.replace(claimed, claimed.with_name(_name(batch_id, tries)))  # its mtime, now, starts the wait
        return
    dead = claimed.parent / DEAD_LETTER
    dead.mkdir(exist_ok=True)
    os.replace(claimed, dead / f"{batch_id}.batch")
    app.logger.error("spooled batch %s set aside in %s after %d failed tries: %s", batch_id, dead, tries, reason)
    if site is not None:
        with app.app_context():
            count_rejections(site, {"dead_letter": events})


def _replayer(app):
    global _thread
    while True:
        time.sleep(REPLAY_EVERY_S)
        try:
            replay_once(app)
        except Exception as e:  # noqa: BLE001 -- the store still unreachable (or the disk): try again
            app.logger.warning("spool replay deferred: %s", e)
            continue
        if pending(app) == 0:
            with _thread_lock:
                if pending(app) == 0:
                    _thread = None
                    return


def _start_replayer(app):
    global _thread
    with _thread_lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_replayer, args=(app,), daemon=True, name="vitrina-spool")
            _thread.start()


def init_app(app):
    """A worker that starts with batches left in the spool replays them."""
    if pending(app):
        _start_replayer(app)
