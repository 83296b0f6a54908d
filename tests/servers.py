"""Real servers for tests: redis-server and gunicorn on free local ports, stopped after use."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
# What a shopper's browser sends: collect requests from urllib's own user agent (Python-urllib, a
# bot to ua-parser) would be excluded as bot traffic and never counted.
BROWSER_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
              "Safari/537.36")


# The end of tag.js: vitrina.init({"bundle": JSON.parse('<JSON, \\ and ' escaped>'), "reads": [...]}).
_TAG_BOOT = re.compile(rb"\n;vitrina\.init\(\{\"bundle\":JSON\.parse\('((?:[^'\\]|\\.)*)'\),\"reads\":(.*)\}\);\n$", re.S)


def tag_boot(tag_js):
    """tag.js's argument to vitrina.init, {"bundle": ..., "reads": [...]}, decoded as the browser
    would (the bundle's quoted JSON text unquoted: its only escapes are \\\\ and \\')."""
    match = _TAG_BOOT.search(tag_js)
    assert match, "tag.js must end with vitrina.init({\"bundle\":JSON.parse('...'),\"reads\":[...]})"
    bundle_text = re.sub(rb"\\(.)", rb"\1", match.group(1))
    return {"bundle": json.loads(bundle_text), "reads": json.loads(match.group(2))}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout=15.0, what="server"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout}s")


def _port_open(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def redis_server(extra_args=()):
    """A throwaway redis-server; yields (url, port, process)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run scripts/setup.sh")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="vitrina-redis-")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", workdir, *extra_args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _port_open(port), what="redis-server")
        yield f"redis://127.0.0.1:{port}/0", port, proc
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


DEPLOY_NGINX = REPO / "deploy" / "nginx.conf"
# The arguments of deploy/nginx.conf's "# EDIT" lines a test sets (by directive); the lines it keeps.
_EDGE_EDITS = ("proxy_cache_path", "server", "listen")
_EDGE_KEPT = ("127.0.0.1",)  # the refresh allow-list: the tests run on loopback
_EDGE_MAIN = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
daemon off;
events {{ worker_connections 256; }}
http {{
  access_log {prefix}/access.log;
  client_body_temp_path {prefix}/tmp/body;
  proxy_temp_path {prefix}/tmp/proxy;
  fastcgi_temp_path {prefix}/tmp/fastcgi;
  uwsgi_temp_path {prefix}/tmp/uwsgi;
  scgi_temp_path {prefix}/tmp/scgi;
  include {prefix}/vitrina.conf;
}}
"""


def edge_config(origin_port, port, cache_dir):
    """deploy/nginx.conf as it is, but for its "# EDIT" lines: the cache in `cache_dir`, the
    origin on 127.0.0.1:origin_port, listening on 127.0.0.1:port. A new EDIT line fails here."""
    values = {"proxy_cache_path": str(cache_dir), "server": f"127.0.0.1:{origin_port}", "listen": f"127.0.0.1:{port}"}
    lines = []
    for line in DEPLOY_NGINX.read_text().splitlines():
        if "# EDIT" in line and not line.lstrip().startswith("#"):
            words = line.split()
            if words[0] in _EDGE_EDITS:
                line = line.replace(f" {words[1].rstrip(';')}", f" {values.pop(words[0])}", 1)
            elif words[0] not in _EDGE_KEPT:
                raise AssertionError(f"deploy/nginx.conf has an EDIT line the tests do not know: {line}")
        lines.append(line)
    assert not values, f"deploy/nginx.conf lacks the EDIT lines of {sorted(values)}"
    return "\n".join(lines) + "\n"


@contextmanager
def nginx_edge(origin_url):
    """nginx started from deploy/nginx.conf in front of `origin_url`, on a free port, everything
    (cache, temp files, logs) under a temp folder; yields an object with `url` and `prefix`."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        raise RuntimeError("nginx is not installed: run scripts/setup.sh --test")
    prefix = Path(tempfile.mkdtemp(prefix="vitrina-edge-"))
    port = free_port()
    for folder in ("cache", "tmp"):
        (prefix / folder).mkdir()
        (prefix / folder).chmod(0o777)  # nginx started by root works as another user
    prefix.chmod(0o755)
    (prefix / "vitrina.conf").write_text(edge_config(int(origin_url.rsplit(":", 1)[1]), port, prefix / "cache"))
    (prefix / "nginx.conf").write_text(_EDGE_MAIN.format(prefix=prefix))
    proc = subprocess.Popen([binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    edge = SimpleNamespace(url=f"http://127.0.0.1:{port}", prefix=prefix)

    def up():
        if proc.poll() is not None:
            raise RuntimeError(f"nginx did not start: {proc.stderr.read().decode()[-2000:]}")
        return _port_open(port)
    try:
        wait_for(up, what="nginx")
        yield edge
    finally:
        _stop(proc, 10)
        proc.stderr.close()
        shutil.rmtree(prefix, ignore_errors=True)


def _stop(proc, timeout):
    """SIGTERM, then SIGKILL if it is still there after `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


def vitrina(env, *args):
    """`vitrina <args>` (the real CLI, in its own process) with environment `env`."""
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


@contextmanager
def gunicorn_server(env_overrides, workers=2, log_path=None):
    """`vitrina serve` (the real CLI, under gunicorn) on a free port; yields its base URL.
    Its output goes to `log_path` when given (kept), else to a temp file (removed)."""
    port = free_port()
    env = {**os.environ, **env_overrides}
    log = open(log_path, "wb") if log_path else tempfile.NamedTemporaryFile(
        prefix="vitrina-gunicorn-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", str(workers)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: urllib.request.urlopen(url + "/healthz", timeout=1).status == 200, what="gunicorn")
        yield url
    except RuntimeError:
        log.flush()
        raise RuntimeError("gunicorn did not start:\n" + Path(log.name).read_text()[-3000:]) from None
    finally:
        _stop(proc, 15)
        log.close()
        if not log_path:
            os.unlink(log.name)


def gunicorn_master(url):
    """The pid of the gunicorn master gunicorn_server started for `url`."""
    port = url.rsplit(":", 1)[1]
    out = subprocess.run(["pgrep", "-f", f"server.cli serve --host 127.0.0.1 --port {port}"],
                         capture_output=True, text=True).stdout.split()
    pids = {int(p) for p in out}
    masters = [p for p in pids if _parent(p) not in pids]  # workers are forked children of the master
    assert len(masters) == 1, out
    return masters[0]


def gunicorn_workers(url):
    """The pids of its workers now."""
    out = subprocess.run(["pgrep", "-P", str(gunicorn_master(url))], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def _parent(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


@contextmanager
def durable_redis():
    """A redis-server with an fsync-always append-only file, restartable on the same port;
    yields (url, start, stop, process) with process() the running redis-server."""
    workdir = tempfile.mkdtemp(prefix="vitrina-redis-aof-")
    port = free_port()
    args = [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir,
            "--appendonly", "yes", "--appendfsync", "always", "--save", ""]
    state = {}

    def start():
        state["proc"] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _ping(port), what="redis-server")

    def stop():
        state["proc"].send_signal(signal.SIGCONT)  # a stopped (SIGSTOP) server would not hear SIGTERM
        state["proc"].terminate()
        state["proc"].wait(10)

    start()
    try:
        yield f"redis://127.0.0.1:{port}/0", start, stop, lambda: state["proc"]
    finally:
        if state["proc"].poll() is None:
            stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _ping(port):
    import redis
    client = redis.Redis(port=port, socket_timeout=0.5)
    try:
        return client.ping()
    finally:
        client.close()


@contextmanager
def redis_cluster(masters=3):
    """A throwaway Redis Cluster of `masters` redis-server processes (no replicas);
    yields (url, ports) with url = redis+cluster://127.0.0.1:<first port>."""
    binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if binary is None or cli is None:
        raise RuntimeError("redis-server and redis-cli are needed: run scripts/setup.sh")
    workdir = tempfile.mkdtemp(prefix="vitrina-redis-cluster-")
    ports, procs = [], []
    try:
        for _ in range(masters):
            port = free_port()
            # An explicit bus port: the default (port + 10000) overflows for high ephemeral ports.
            procs.append(subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", workdir, "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                 "--cluster-port", str(free_port()), "--cluster-node-timeout", "2000"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            ports.append(port)
        for port in ports:
            wait_for(lambda: _port_open(port), what="redis-server (cluster node)")
        subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)

        def cluster_ok():
            return all("cluster_state:ok" in subprocess.run(
                [cli, "-p", str(p), "cluster", "info"], capture_output=True, text=True, timeout=5).stdout
                for p in ports)
        wait_for(cluster_ok, what="redis cluster")
        yield f"redis+cluster://127.0.0.1:{ports[0]}", ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)
