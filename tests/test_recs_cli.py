"""The catalogue and recommendation commands as a user runs them, the store lock that lets one
worker build a site, and `vitrina serve` starting exactly one worker beside gunicorn."""
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from servers import REPO, gunicorn_server, redis_server, wait_for

from server import create_app
from server.recs import worker
from server.store import get_store
from tests.test_recommendations import ORDERS, feed_record

CSV_HEADER = "id,title,link,price,availability,product_type\n"


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "VITRINA_DATABASE": str(tmp_path / "v.sqlite3"), "VITRINA_SECRET_KEY": "k" * 20}


def vitrina(env, *args, timeout=60):
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def shop_files(tmp_path, products=12):
    feed = tmp_path / "feed.csv"
    rows = [f"sku-{i},Product {i},https://s.example/{i},{i + 1}.00 EUR,in_stock,Home > Mugs" for i in range(products)]
    feed.write_text(CSV_HEADER + "\n".join(rows) + "\nbad id,x,https://s.example/x,1 EUR,in_stock,\n")
    orders = tmp_path / "orders.jsonl"
    orders.write_text("\n".join(json.dumps({"order_id": f"o{n}", "customer_id": f"c{n}", "items": [
        {"id": "sku-0"}, {"id": "sku-1" if n % 4 else "sku-2"}]}) for n in range(20)) + "\n")
    return feed, orders


def test_catalog_and_orders_import_then_recs_build(env, tmp_path):
    assert vitrina(env, "sites", "create", "shop").returncode == 0
    feed, orders = shop_files(tmp_path)
    proc = vitrina(env, "catalog", "import", "shop", str(feed))
    assert proc.returncode == 1  # one refused line: listed, the rest imported
    assert json.loads(proc.stdout) == {"received": 13, "upserted": 12, "deleted": 0}
    assert f"{feed}:14: /id: must be" in proc.stderr
    assert "catalogue" in proc.stderr and "100%" in proc.stderr  # the progress bar
    proc = vitrina(env, "orders", "import", "shop", str(orders))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"received": 20, "imported": 20, "duplicates": 0}
    proc = vitrina(env, "recs", "build", "shop")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["products"], summary["interactions"]) == (12, 20) and summary["rankings"] > 0
    assert "recommendations" in proc.stderr and "8/8" in proc.stderr
    patch = tmp_path / "patch.jsonl"
    patch.write_text('{"id": "sku-3", "_delete": true}\n')
    proc = vitrina(env, "catalog", "import", "shop", str(patch), "--patch")
    assert json.loads(proc.stdout)["deleted"] == 1
    app = create_app(env={k: env[k] for k in ("VITRINA_DATABASE", "VITRINA_SECRET_KEY")})
    with app.app_context():
        answer = app.test_client().get("/v1/sites/shop/recommendations?strategy=bought_together&items=sku-0&n=2")
    assert [i["id"] for i in answer.get_json()["items"]] == ["sku-1", "sku-2"]


def test_commands_refuse_unknown_sites_files_and_formats(env, tmp_path):
    vitrina(env, "sites", "create", "shop")
    feed, _ = shop_files(tmp_path)
    assert "no site 'nope'" in vitrina(env, "catalog", "import", "nope", str(feed)).stderr
    assert "no such file" in vitrina(env, "catalog", "import", "shop", str(tmp_path / "missing.csv")).stderr
    odd = tmp_path / "feed.xml"
    odd.write_text("<x/>")
    assert "cannot tell the format" in vitrina(env, "catalog", "import", "shop", str(odd)).stderr
    as_csv = vitrina(env, "catalog", "import", "shop", str(odd), "--format", "csv")
    assert as_csv.returncode == 1 and "the header row must name the columns, among them id" in as_csv.stderr
    assert vitrina(env, "recs", "build", "nope").returncode == 2


# --- the lock: one builder per site --------------------------------------------------------------

def _planted_app(tmp_path, redis_url=None):
    env = {"VITRINA_DATABASE": str(tmp_path / "v.sqlite3"), "VITRINA_SECRET_KEY": "k" * 20}
    if redis_url:
        env["VITRINA_REDIS_URL"] = redis_url
    app = create_app(env=env)
    from server.catalog.importer import import_orders, import_products
    with app.app_context():
        store = get_store()
        if redis_url:
            store.r.flushall()
        store.create_site("shop", "hash")
        import_products(store, "shop", ((n, feed_record(pid), None) for n, pid in enumerate(
            ["mug-a", "beans-1", "spoon-1", "rake-1", "rake-2"], 1)), replace=True)
        import_orders(store, "shop", ((n, {"order_id": f"o{n}", "customer_id": f"c{n}",
                                           "items": [{"id": i} for i in items]}, None)
                                      for n, (_, items) in enumerate(ORDERS, 1)))
    return app, env


@pytest.fixture(params=["sqlite", "redis"])
def backend(request, tmp_path):
    if request.param == "sqlite":
        yield _planted_app(tmp_path)
        return
    with redis_server() as (url, _, _):
        yield _planted_app(tmp_path, url)


def test_two_workers_racing_build_a_site_once(backend):
    app, _ = backend
    results, inside, start = [], [], threading.Barrier(2)

    def slow(stage):
        inside.append(stage)
        time.sleep(0.05)  # a build long enough for the other worker to try meanwhile

    def run(owner):
        start.wait()
        with app.app_context():
            results.append(worker.build_with_lock(get_store(), "shop", owner, every_s=0, progress=slow))

    threads = [threading.Thread(target=run, args=(f"worker-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1
    with app.app_context():
        status = get_store().recs_status("shop")
        assert status["built_at"] >= status["imports_at"]
        assert not worker.is_due(status, time.time(), every_s=0)


def test_a_worker_skips_a_site_whose_lock_another_node_holds(backend):
    app, env = backend
    run_env = {**os.environ, **env}
    with app.app_context():
        assert get_store().acquire_lock("recs:shop", "another-node", 60)
    proc = vitrina(run_env, "worker", "--once")
    assert proc.returncode == 0 and "built shop" not in proc.stdout
    with app.app_context():
        assert get_store().recs_status("shop")["built_at"] is None
        assert get_store().release_lock("recs:shop", "another-node")
    procs = [subprocess.Popen([sys.executable, "-m", "server.cli", "worker", "--once"], cwd=REPO, env=run_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert sum(out.count("built shop") for out in outputs) == 1, outputs


# --- vitrina serve: exactly one worker, which builds after an import --------------------------

def _workers_of(port):
    """Pids of `vitrina worker` processes whose parent is the `vitrina serve` on this port."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            parent_cmdline = Path(f"/proc/{parent}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if b"worker" in cmdline and b"server.cli" in cmdline and str(port).encode() in parent_cmdline:
            found.append(int(proc.name))
    return found


def test_serve_runs_one_worker_that_builds_after_imports(tmp_path):
    from server.web.auth import hash_key, new_api_key
    env = {"VITRINA_DATABASE": str(tmp_path / "g.sqlite3"), "VITRINA_SECRET_KEY": "k" * 20,
           "VITRINA_RECS_POLL_S": "1", "VITRINA_FEED_MAX_BYTES": "200000"}
    key = new_api_key()
    app = create_app(env=env)
    with app.app_context():
        get_store().create_site("shop", hash_key(key))
    feed, orders = shop_files(tmp_path)
    with gunicorn_server(env, workers=2) as url:
        port = int(url.rsplit(":", 1)[1])
        wait_for(lambda: len(_workers_of(port)) == 1, what="the worker")
        time.sleep(0.5)
        assert len(_workers_of(port)) == 1
        (worker_pid,) = _workers_of(port)
        auth = {"Authorization": f"Bearer {key}"}
        for path, method, body, kind in (("catalog", "PUT", feed, "text/csv"),
                                         ("orders", "POST", orders, "application/x-ndjson")):
            request = urllib.request.Request(f"{url}/api/v1/sites/shop/{path}", data=body.read_bytes(), method=method,
                                             headers={**auth, "Content-Type": kind})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200

        def served_by():
            query = f"{url}/v1/sites/shop/recommendations?strategy=bought_together&items=sku-0&n=2"
            with urllib.request.urlopen(query, timeout=5) as response:
                return json.loads(response.read())["served_by"]
        wait_for(lambda: served_by() == "bought_together", timeout=20, what="a build by the worker")
        # a chunked body (no Content-Length) past the feed limit is refused while read
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.putrequest("PUT", "/api/v1/sites/shop/catalog")
        for name, value in {**auth, "Content-Type": "application/x-ndjson", "Transfer-Encoding": "chunked"}.items():
            connection.putheader(name, value)
        connection.endheaders()
        line = (json.dumps(feed_record("mug-a")) + "\n").encode()
        for _ in range(300_000 // len(line)):
            connection.send(b"%x\r\n%s\r\n" % (len(line), line))
        connection.send(b"0\r\n\r\n")
        response = connection.getresponse()
        assert response.status == 413 and json.loads(response.read())["error"] == "payload_too_large"
        connection.close()
    wait_for(lambda: not Path(f"/proc/{worker_pid}").exists() or b"Z" in _state(worker_pid), what="worker exit")


def _state(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return b"Z"
