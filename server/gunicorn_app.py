"""Run the app under gunicorn from Python, so `vitrina serve` needs no config file."""
from gunicorn.app.base import BaseApplication


class VitrinaServer(BaseApplication):
    def __init__(self, options):
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            if key in self.cfg.settings:  # settings newer than the installed gunicorn are skipped
                self.cfg.set(key, value)

    def load(self):
        from . import create_app
        return create_app()


def run(host, port, workers, **extra):
    VitrinaServer({"bind": f"{host}:{port}", "workers": workers, "accesslog": "-",
                   # Threads keep connections alive (sync workers close each one), so a browser
                   # or CDN reuses its connection for tag.js and collect.
                   "worker_class": "gthread", "threads": 4, "keepalive": 5,
                   # No %(h)s: visitor IPs are never written anywhere, logs included.
                   "access_log_format": '%(t)s "%(r)s" %(s)s %(b)s %(M)sms',
                   # gunicorn 27 opens one control socket per user by default: several servers would share it.
                   "control_socket_disable": True,
                   "forwarded_allow_ips": "127.0.0.1", **extra}).run()
