"""The `vitrina` CLI as a user runs it."""
import json
import os
import subprocess
import sys
import urllib.request

import pytest

from server.web.auth import hash_key
from tests.servers import REPO, gunicorn_server

DEMO_CONFIG = REPO / "server" / "demo" / "config.json"


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "VITRINA_DATABASE": str(tmp_path / "v.sqlite3")}


def vitrina(env, *args):
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


def test_sites_create_prints_the_key_alone_on_its_last_line_and_stores_its_hash(env, tmp_path):
    proc = vitrina(env, "sites", "create", "shop")
    assert proc.returncode == 0, proc.stderr
    key = proc.stdout.strip().splitlines()[-1]
    assert key.startswith("vk_") and " " not in key and len(key) > 40
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("v.sqlite3*"))
    assert hash_key(key).encode() in stored and key.encode() not in stored
    again = vitrina(env, "sites", "create", "shop")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert vitrina(env, "sites", "list").stdout.split() == ["shop"]


@pytest.mark.parametrize("name", ["Bad Name!", "shop\n"])
def test_sites_create_rejects_a_bad_name(env, name):
    proc = vitrina(env, "sites", "create", name)
    assert proc.returncode == 2 and "site name" in proc.stderr
    assert vitrina(env, "sites", "list").stdout.split() == []


def test_publish_from_a_file_and_results_table(env, tmp_path):
    vitrina(env, "sites", "create", "shop")
    proc = vitrina(env, "publish", "shop", str(DEMO_CONFIG))
    assert proc.returncode == 0, proc.stderr
    assert "version 1" in proc.stdout
    table = vitrina(env, "results", "shop")
    assert table.returncode == 0
    assert "hero-newsletter (personalization)" in table.stdout and "no visitors yet" in table.stdout
    as_json = json.loads(vitrina(env, "results", "shop", "--json").stdout)
    assert as_json["version"] == 1


def test_publish_of_an_invalid_file_lists_problems_and_publishes_nothing(env, tmp_path):
    vitrina(env, "sites", "create", "shop")
    bad = json.loads(DEMO_CONFIG.read_text())
    bad["campaigns"][0]["segment"] = "missing"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    proc = vitrina(env, "publish", "shop", str(path))
    assert proc.returncode == 1
    assert "/campaigns/0/segment: unknown segment 'missing'" in proc.stderr
    assert json.loads(vitrina(env, "results", "shop", "--json").stdout)["version"] is None


def test_serve_runs_gunicorn_on_the_embedded_defaults(tmp_path):
    with gunicorn_server({"VITRINA_DATABASE": str(tmp_path / "g.sqlite3")}) as url:
        health = json.loads(urllib.request.urlopen(url + "/healthz", timeout=5).read())
        assert health == {"status": "ok", "store": "SQLiteStore", "store_ok": True}
        server = urllib.request.urlopen(url + "/healthz", timeout=5).headers["Server"]
        assert "gunicorn" in server
    assert (tmp_path / "secret_key").exists()


def test_demo_serves_the_shop_and_a_published_tag(env):
    from tests.servers import free_port, wait_for
    port, shop_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "demo", "--port", str(port),
                             "--shop-port", str(shop_port)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).status == 200,
                 what="vitrina demo")
        page = urllib.request.urlopen(f"http://127.0.0.1:{shop_port}/", timeout=5).read().decode()
        assert f'src="http://127.0.0.1:{port}/v1/sites/demo/tag.js"' in page
        tag = urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/sites/demo/tag.js", timeout=5).read()
        assert b'"key":"hero-newsletter"' in tag
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert f"http://127.0.0.1:{shop_port}/?utm_source=newsletter" in out
