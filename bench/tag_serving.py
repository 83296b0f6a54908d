"""tag_serving: requests/s of GET /v1/sites/<site>/tag.js, context.js (when the server has it)
and bundle.json (gzip accepted), and of bundle.json revalidated with If-None-Match (304), under
`vitrina serve` (embedded SQLite store, 2 x cores workers: gunicorn running uvicorn workers, the
hot GETs answered by server/web/asgi.py on the event loop), against nginx serving the very same
bytes as static files (gzip_static, pre-gzipped), started by this benchmark on a free local
port with a temp config, in the same run, with the same wrk load and the same headers (a real
mobile User-Agent: per-visitor replies resolve the device from it). Both servers write an
access line per request to a file, as each does by default. The site is the shared
200-campaign workload. Target: >= 30% of nginx's requests/s."""
import hashlib
import os
import shutil
import subprocess
from http.client import HTTPConnection
from pathlib import Path

from . import workload
from .common import (
    Row,
    create_site,
    free_port,
    gunicorn_server,
    log,
    publish,
    server_env,
    temp_dir,
    wait_for,
    wrk,
)

SITE = "bench"
SECONDS = 4
CONNECTIONS = 16
UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
      "Version/18.1 Mobile/15E148 Safari/604.1")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

NGINX_CONF = """\
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
daemon off;
events {{ worker_connections 1024; }}
http {{
  access_log {prefix}/access.log;  # as vitrina serve logs every request (nginx's default too)
  client_body_temp_path {prefix}/tmp/body;
  proxy_temp_path {prefix}/tmp/proxy;
  fastcgi_temp_path {prefix}/tmp/fastcgi;
  uwsgi_temp_path {prefix}/tmp/uwsgi;
  scgi_temp_path {prefix}/tmp/scgi;
  types {{ application/javascript js; application/json json; }}
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  gzip_static on;
  server {{
    listen 127.0.0.1:{port};
    root {prefix}/www;
    location / {{ add_header Cache-Control "public, max-age=60"; add_header Vary "Accept-Encoding"; }}
  }}
}}
"""


class Nginx:
    """nginx on a free local port, everything under a temp prefix; stopped on exit."""

    def __init__(self, prefix, files):
        self.prefix = prefix
        self.port = free_port()
        www = prefix / "www"
        for rel, (plain, packed) in files.items():
            target = www / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(plain)
            if packed is not None:
                Path(str(target) + ".gz").write_bytes(packed)
        (prefix / "tmp").mkdir()
        # nginx started by root serves as `nobody`: let it read the temp tree.
        for p in [prefix.parent, prefix, *prefix.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(workers=os.cpu_count() or 1, prefix=prefix, port=self.port))
        self.conf = conf

    def __enter__(self):
        self.proc = subprocess.Popen([NGINX, "-p", str(self.prefix), "-c", str(self.conf), "-e",
                                      str(self.prefix / "error.log")], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx did not start: {self.proc.stderr.read().decode()[-2000:]}")
            return _get(f"http://127.0.0.1:{self.port}/", {})[0] in (200, 403, 404)
        wait_for(up, what="nginx")
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _get(url, headers):
    """(status, headers, body) without urllib's redirect/304 handling."""
    host, _, rest = url[len("http://"):].partition("/")
    conn = HTTPConnection(*host.split(":"), timeout=30)
    try:
        conn.request("GET", "/" + rest, headers=headers)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def _measure(url, headers, expect):
    status, _, _ = _get(url, dict(h.split(": ", 1) for h in headers))
    if status != expect:
        raise RuntimeError(f"{url}: status {status}, expected {expect}")
    s = wrk(url, SECONDS, CONNECTIONS, threads=2, headers=headers)
    if s["status"] or s["errors"]:
        raise RuntimeError(f"{url}: {s['status']} error statuses, {s['errors']} socket errors")
    return s["rps"]


def run():
    data = workload.load()
    workers = 2 * (os.cpu_count() or 1)
    base_headers = [f"User-Agent: {UA}", "Accept-Encoding: gzip, deflate, br"]
    rows = []
    with temp_dir("vitrina-bench-tag-") as work:
        env = server_env(work)
        key = create_site(env, SITE)
        with gunicorn_server(env, workers=workers) as url:
            publish(url, SITE, key, data["config"])
            _, _, sdk = _get(url + "/sdk/vitrina.min.js", {})
            paths = {"tag.js": f"/v1/sites/{SITE}/tag.js", "context.js": f"/v1/sites/{SITE}/context.js",
                     "bundle.json": f"/v1/sites/{SITE}/bundle.json",
                     # the SDK alone: one fixed body, no site, no context: what this server stack
                     # does at best, for reference
                     "sdk": f"/sdk/vitrina.min.js?v={hashlib.sha256(sdk).hexdigest()[:16]}"}
            status = _get(url + paths["context.js"], {"User-Agent": UA})[0]
            if status == 404:
                log("context.js skipped: this server answers 404 for it (no per-visitor context script)")
                del paths["context.js"]
            files, etags, sizes = {}, {}, {}
            hdrs = dict(h.split(": ", 1) for h in base_headers)
            for name, path in paths.items():
                _, h_gz, packed = _get(url + path, hdrs)
                _, _, plain = _get(url + path, {"User-Agent": UA})
                gzipped = h_gz.get("content-encoding") == "gzip"
                if not gzipped and name != "context.js":  # a few hundred bytes: gzip is its server's choice
                    raise RuntimeError(f"{path} was not gzipped")
                files[path.split("?")[0].lstrip("/")] = (plain, packed if gzipped else None)
                etags[name] = h_gz.get("etag")
                sizes[name] = (len(plain), len(packed) if gzipped else None)
            log("same bytes on both sides: " + ", ".join(
                f"{n} {p:,} B" + (f" ({g:,} B gzipped)" if g else "") for n, (p, g) in sizes.items()))
            with Nginx(work / "nginx", files) as nginx_url:
                status, nginx_bundle_headers, body = _get(nginx_url + paths["bundle.json"], hdrs)
                if status != 200 or body != files[paths["bundle.json"].lstrip("/")][1]:
                    raise RuntimeError(f"nginx does not serve the same bytes (status {status})")
                runs = [
                    ("tag.js, gzip", paths["tag.js"], [], [], 200),
                    *([("context.js", paths["context.js"], [], [], 200)] if "context.js" in paths else []),
                    ("bundle.json, gzip", paths["bundle.json"], [], [], 200),
                    ("bundle.json, If-None-Match (304)", paths["bundle.json"],
                     [f"If-None-Match: {etags['bundle.json']}"],
                     [f"If-None-Match: {nginx_bundle_headers['etag']}"], 304),
                    ("SDK alone (reference, no target)", paths["sdk"], [], [], 200),
                ]
                for label, path, ours, theirs, expect in runs:
                    vitrina_rps = _measure(url + path, base_headers + ours, expect)
                    nginx_rps = _measure(nginx_url + path, base_headers + theirs, expect)
                    reference = path == paths["sdk"]
                    rows.append(Row("tag_serving", label, vitrina_rps, "req/s", nginx_rps, "nginx static",
                                    "" if reference else "ratio >= 0.30×",
                                    None if reference else vitrina_rps / nginx_rps >= 0.30))
    log(f"wrk -t2 -c {CONNECTIONS}, {SECONDS} s per run (wrk shares the 2 cores with the server it loads); "
        f"vitrina serve {workers} workers (gunicorn + uvicorn workers: httptools, uvloop), nginx {os.cpu_count()} workers")
    return rows
