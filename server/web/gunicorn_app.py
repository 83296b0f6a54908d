"""Run the app under gunicorn from Python, so `vitrina serve` needs no config file."""
import os
import signal

from gunicorn.app.base import BaseApplication

try:
    import uvloop  # noqa: F401  imported before the fork: workers boot (and can be stopped) sooner
except ImportError:
    pass

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
_held = []
_worker = []


def _hold(signum, frame):
    _held.append(signum)


def _hold_stop_signals():
    for sig in _STOP_SIGNALS:
        signal.signal(sig, _hold)


def _post_fork(server, worker):
    # A stop signal reaching a booting worker would be lost: first to the master's inherited
    # handler, then (uvloop installs its handlers for real only once the loop runs) to a no-op
    # while the app loads. The worker then serves on until killed. So stop signals are held
    # from the fork until the loop runs, then handled (release_held_signals, from the lifespan).
    _worker[:] = [worker]
    _hold_stop_signals()


def release_held_signals():
    """Called on the running event loop: install the worker's loop handlers again, now that
    they take effect, and deliver what arrived while the worker booted."""
    if not _worker:
        return  # not under `vitrina serve` (tests drive the ASGI app directly)
    _worker[0].init_signals()
    for sig in _held:
        os.kill(os.getpid(), sig)
    _held.clear()


class VitrinaServer(BaseApplication):
    def __init__(self, options):
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            if key in self.cfg.settings:  # settings newer than the installed gunicorn are skipped
                self.cfg.set(key, value)

    def load(self):
        _hold_stop_signals()  # gunicorn's init_signals ran just before this (see _post_fork)
        from server import create_app
        from server.web.asgi import VitrinaASGI
        return VitrinaASGI(create_app(), on_startup=release_held_signals)


def run(host, port, workers, **extra):
    VitrinaServer({"bind": f"{host}:{port}", "workers": workers, "accesslog": "-",
                   # gunicorn's asyncio worker, each connection starting on server/web/hot_http.py
                   # (the hot GETs answered at once) and handed to gunicorn's own protocol for
                   # anything else; Flask runs on a thread pool behind it (server/web/asgi.py).
                   "worker_class": "server.web.hot_http.HotWorker", "keepalive": 5,
                   # A fixed, cheap access line with no visitor address (server/web/access_log.py).
                   "logger_class": "server.web.access_log.LeanLogger",
                   # gunicorn 27 opens one control socket per user by default: several servers would share it.
                   "control_socket_disable": True,
                   "post_fork": _post_fork,
                   "forwarded_allow_ips": "127.0.0.1", **extra}).run()
