"""When the store is unreachable, accepted `collect` batches wait on local disk and are
replayed (verified and recorded, idempotently by event id) once it answers again."""
import json
import os
import secrets
import threading
import time
from pathlib import Path

from flask import current_app

CLAIM_TIMEOUT_S = 60  # a claim older than this belonged to a worker that died: take it back
REPLAY_EVERY_S = 1.0
_thread_lock = threading.Lock()
_thread = None


def spool_dir(app=None):
    app = app or current_app
    return Path(app.config["VITRINA_SPOOL_DIR"])


def save(site, visitor_id, events):
    """Write one batch atomically (temp file + rename) and make sure a replayer runs."""
    folder = spool_dir()
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns()}-{os.getpid()}-{secrets.token_hex(4)}"
    tmp = folder / f".{name}.tmp"
    with open(tmp, "w") as f:
        json.dump({"site": site, "visitor_id": visitor_id, "events": events}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / f"{name}.batch")
    _start_replayer(current_app._get_current_object())


def pending(app=None):
    folder = spool_dir(app)
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if p.suffix in (".batch", ".claimed"))


def _claim(path):
    claimed = path.with_suffix(".claimed")
    try:
        os.replace(path, claimed)  # atomic: of several workers, one wins the rename
    except FileNotFoundError:
        return None
    os.utime(claimed)
    return claimed


def replay_once(app, ingest, limit=200):
    """Replay up to `limit` spooled batches with ingest(site, visitor_id, events); returns how
    many were done. Stops at the first failure (the store is still down): the batch stays."""
    folder = spool_dir(app)
    if not folder.is_dir():
        return 0
    now = time.time()
    for stale in folder.glob("*.claimed"):
        if now - stale.stat().st_mtime > CLAIM_TIMEOUT_S:
            os.replace(stale, stale.with_suffix(".batch"))
    done = 0
    for path in sorted(folder.glob("*.batch"))[:limit]:
        claimed = _claim(path)
        if claimed is None:
            continue
        batch = json.loads(claimed.read_text())
        try:
            with app.app_context():
                ingest(batch["site"], batch["visitor_id"], batch["events"])
        except Exception as e:
            if getattr(e, "permanent", False):  # refused on verification: counted, dropped
                app.logger.warning("spooled batch %s refused: %s", path.name, e)
                claimed.unlink()
                continue
            os.replace(claimed, path)  # give it back for the next round
            raise
        claimed.unlink()
        done += 1
    return done


def _replayer(app):
    global _thread
    from server.events.collect import ingest
    while True:
        time.sleep(REPLAY_EVERY_S)
        try:
            replay_once(app, ingest)
        except Exception as e:  # still unreachable: keep the batches, try again
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
