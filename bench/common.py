"""Shared helpers: result rows and tables, timing, local servers, publishing a site over HTTP."""
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers import REPO, free_port, gunicorn_server, redis_server, wait_for  # noqa: F401 (re-exported)

SECRET = "bench-secret-key-0123456789abcdef"


@dataclass
class Row:
    """One measured figure against its same-run baseline and its target.

    `better` is "lower" (times, sizes) or "higher" (throughputs). `ok` is decided by the
    benchmark (a target may be on the figure, the ratio, or both) and printed as PASS/MISS;
    None prints "info" (a figure reported without a target)."""
    bench: str
    metric: str
    figure: float
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    target: str = ""
    ok: bool | None = None
    note: str = ""

    @property
    def ratio(self):
        if self.baseline in (None, 0) or self.figure is None:
            return None
        return self.figure / self.baseline

    @property
    def status(self):
        return "info" if self.ok is None else "PASS" if self.ok else "MISS"


def fmt(value, unit):
    if value is None:
        return "-"
    if unit in ("ms", "µs"):
        return f"{value:,.3f} {unit}" if value < 10 else f"{value:,.1f} {unit}"
    if unit == "B":
        return f"{value:,.0f} B"
    if value >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:,.2f} {unit}"


def table(rows):
    """A plain-text table: figure, baseline, ratio, target, PASS/MISS."""
    head = ["benchmark", "metric", "figure", "baseline (same run)", "ratio", "target", "status"]
    body = []
    for r in rows:
        base = "-" if r.baseline is None else f"{fmt(r.baseline, r.unit)} ({r.baseline_label})"
        ratio = "-" if r.ratio is None else f"{r.ratio:.3f}×"
        body.append([r.bench, r.metric, fmt(r.figure, r.unit), base, ratio, r.target or "-", r.status])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [line(head), line(["-" * w for w in widths])] + [line(b) for b in body]
    notes = [f"  [{r.bench}/{r.metric}] {r.note}" for r in rows if r.note]
    return "\n".join(out + (["notes:"] + notes if notes else []))


def median(values):
    return statistics.median(values)


def log(message):
    print(f"  · {message}", flush=True)


def load_average():
    try:
        return os.getloadavg()
    except OSError:
        return None


# --- HTTP against a local server -------------------------------------------------------------

def http(url, data=None, headers=None, method=None, timeout=30):
    assert url.startswith("http://127.0.0.1:"), url  # benchmarks talk to this machine only
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as response:
        return response.status, dict(response.headers), response.read()


def create_site(env, site):
    """Create `site` in the store the server uses (as `vitrina sites create` does); returns its key."""
    from server import create_app
    from server.store import get_store
    from server.web.auth import hash_key, new_api_key
    key = new_api_key()
    app = create_app(env=env)
    with app.app_context():
        get_store().create_site(site, hash_key(key))
    app.extensions["vitrina_store"].close()
    return key


def publish(url, site, key, config):
    """PUT the config and publish it over HTTP, as a merchant does; returns the version."""
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    http(f"{url}/api/v1/sites/{site}/config", json.dumps(config).encode(), auth, "PUT")
    _, _, body = http(f"{url}/api/v1/sites/{site}/publish", b"", auth, "POST")
    return json.loads(body)["version"]


@contextmanager
def temp_dir(prefix):
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def server_env(workdir, redis_url=None, **extra):
    env = {"VITRINA_DATABASE": str(workdir / "vitrina.sqlite3"), "VITRINA_SECRET_KEY": SECRET,
           # collect is measured flat out: the rate limits would (rightly) answer 429
           "VITRINA_RATE_SITE": "0", "VITRINA_RATE_CLIENT": "0", **extra}
    if redis_url:
        env["VITRINA_REDIS_URL"] = redis_url
    return env


# --- wrk -------------------------------------------------------------------------------------

WRK_REPORT = r"""
done = function(summary, latency, requests)
  io.write(string.format("WRKJSON {\"requests\": %d, \"duration_us\": %d, \"bytes\": %d, " ..
    "\"connect\": %d, \"read\": %d, \"write\": %d, \"status\": %d, \"timeout\": %d, \"p50_us\": %d, \"p99_us\": %d, " ..
    "\"max_us\": %d}\n",
    summary.requests, summary.duration, summary.bytes, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def wrk(url, seconds, connections, threads=1, headers=(), script=None, script_args=(), timeout=10):
    """Run wrk against a local URL; returns its summary (requests/s, non-2xx/3xx count, ...)."""
    assert url.startswith("http://127.0.0.1:"), url
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        if script:
            f.write(Path(script).read_text())
        f.write(WRK_REPORT)
        lua = f.name
    try:
        cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", f"{timeout}s",
               "-s", lua]
        for h in headers:
            cmd += ["-H", h]
        cmd.append(url)
        if script_args:
            cmd += ["--", *script_args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        line = next((l for l in proc.stdout.splitlines() if l.startswith("WRKJSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
        s = json.loads(line[len("WRKJSON "):])
        s["rps"] = s["requests"] / (s["duration_us"] / 1e6)
        s["errors"] = s["connect"] + s["read"] + s["write"] + s["timeout"]
        return s
    finally:
        os.unlink(lua)


def now_ms():
    return int(time.time() * 1000)
