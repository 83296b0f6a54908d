"""Run the app under gunicorn from Python, so `vitrina serve` needs no config file.

gunicorn is the process manager (workers, restarts, graceful stop); each worker runs uvicorn
(httptools' C parser, uvloop) serving server/web/asgi.py."""
from gunicorn.app.base import BaseApplication
from uvicorn_worker import UvicornWorker


class VitrinaWorker(UvicornWorker):
    """uvicorn as each gunicorn worker, set deliberately: no websockets; proxy headers off
    (VITRINA_PROXY_HOPS is applied by the app, as N trusted hops, on both of its paths); no
    access log of uvicorn's (it prints the client address: the app writes its own line) and
    no Server header."""
    CONFIG_KWARGS = {"loop": "uvloop", "http": "httptools", "ws": "none", "lifespan": "on",
                     "proxy_headers": False, "access_log": False, "server_header": False}


class VitrinaServer(BaseApplication):
    def __init__(self, options):
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            if key in self.cfg.settings:  # settings newer than the installed gunicorn are skipped
                self.cfg.set(key, value)

    def load(self):
        from server import create_app
        from server.web.asgi import VitrinaASGI
        return VitrinaASGI(create_app())


def run(host, port, workers, **extra):
    VitrinaServer({"bind": f"{host}:{port}", "workers": workers, "worker_class": "server.web.gunicorn_app.VitrinaWorker",
                   "keepalive": 5,
                   # gunicorn's access logger, which server/web/access_log.py writes to: stdout.
                   "accesslog": "-",
                   # gunicorn 27 opens one control socket per user by default: several servers would share it.
                   "control_socket_disable": True,
                   **extra}).run()
