"""The `vitrina` CLI as a user runs it."""
import argparse
import json
import os
import subprocess
import sys
import urllib.request

import pytest

from server.cli import build_parser
from server.web.auth import hash_key
from tests.servers import REPO, gunicorn_server, vitrina

DEMO_CONFIG = REPO / "server" / "demo" / "config.json"


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "VITRINA_DATABASE": str(tmp_path / "v.sqlite3")}


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


def test_publish_names_the_real_problem_a_missing_file_or_site_a_bad_json(env, tmp_path):
    vitrina(env, "sites", "create", "shop")
    missing = vitrina(env, "publish", "shop", str(tmp_path / "nope.json"))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"vitrina: cannot read {tmp_path / 'nope.json'}: No such file or directory"
    no_site = vitrina(env, "publish", "shopp", str(DEMO_CONFIG))
    assert no_site.returncode == 2
    assert no_site.stderr.strip() == "vitrina: no site 'shopp': run 'vitrina sites create shopp' first"
    (tmp_path / "bad.json").write_text('{"segments": ')
    not_json = vitrina(env, "publish", "shop", str(tmp_path / "bad.json"))
    assert not_json.returncode == 1 and "invalid" not in not_json.stderr
    assert not_json.stderr.startswith(f"{tmp_path / 'bad.json'}: 1 problem; nothing was published:\n  /: not valid JSON")


def test_publish_prints_what_sanitising_removed(env, tmp_path):
    vitrina(env, "sites", "create", "shop")
    config = json.loads(DEMO_CONFIG.read_text())
    config["campaigns"][0]["variations"][0]["actions"].append(
        {"selector": "#hero", "append": "<p>Hi<script>pwn()</script></p>"})
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    proc = vitrina(env, "publish", "shop", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "version 1" in proc.stdout
    assert proc.stderr == (f"{path}: sanitised; what was removed:\n"
                           "  /campaigns/0/variations/0/actions/4/append: removed <script> element\n")


def test_serve_runs_gunicorn_on_the_embedded_defaults_and_says_where_its_store_is(tmp_path):
    log = tmp_path / "serve.log"
    with gunicorn_server({"VITRINA_DATABASE": str(tmp_path / "g.sqlite3")}, log_path=log) as url:
        health = json.loads(urllib.request.urlopen(url + "/healthz", timeout=5).read())
        assert health == {"status": "ok", "store": "SQLiteStore", "store_ok": True, "spooled": 0, "dead_letter": 0}
        # the server software is not advertised (uvicorn's Server header is off)
        assert urllib.request.urlopen(url + "/healthz", timeout=5).headers["Server"] is None
    assert (tmp_path / "secret_key").exists()
    assert f"store: SQLite {tmp_path / 'g.sqlite3'}" in log.read_text()


def test_the_default_database_is_the_same_from_any_folder(tmp_path):
    """A `vitrina results` run from another folder once made a fresh empty database there."""
    env = {k: v for k, v in os.environ.items() if k != "VITRINA_DATABASE"}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()

    def run(cwd, *args):
        return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=cwd, env={**env, "PYTHONPATH": str(REPO)},
                              capture_output=True, text=True, timeout=60)
    assert run(here, "sites", "create", "shop").returncode == 0
    assert run(there, "sites", "list").stdout.split() == ["shop"]
    assert (tmp_path / "data" / "vitrina" / "vitrina.sqlite3").exists()
    assert (tmp_path / "data" / "vitrina" / "secret_key").exists()
    assert not list(here.iterdir()) and not list(there.iterdir())


def _parsers(parser, name="vitrina"):
    """(command name, parser) for the parser and every subcommand under it."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_every_command_and_option_has_a_help_line():
    seen = []
    for name, parser in _parsers(build_parser()):
        seen.append(name)
        assert parser.description, f"{name}: no description for its --help"
        for action in parser._actions:
            what = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help and action.help.strip(), f"{what}: no help line"
            if isinstance(action, argparse._SubParsersAction):
                listed = {choice.dest for choice in action._choices_actions}
                assert listed == set(action.choices), f"{name}: subcommands without a help line: " \
                                                      f"{set(action.choices) - listed}"
                assert all(choice.help for choice in action._choices_actions), name
    assert {"vitrina serve", "vitrina sites create", "vitrina demo"} <= set(seen)


def test_demo_help_names_the_script_options():
    proc = vitrina({**os.environ}, "demo", "--help")
    assert proc.returncode == 0
    assert "--port" in proc.stdout and "--shop-port" in proc.stdout and "./scripts/demo.sh" in proc.stdout


def test_demo_serves_the_shop_and_a_published_tag(env):
    from tests.servers import free_port, wait_for
    port, shop_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "demo", "--port", str(port),
                             "--shop-port", str(shop_port)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).status == 200,
                 what="vitrina demo")
        page = urllib.request.urlopen(f"http://127.0.0.1:{shop_port}/", timeout=5).read().decode()
        assert f'src="http://127.0.0.1:{port}/v1/sites/demo/tag.js"' in page
        tag = urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/sites/demo/tag.js", timeout=5).read()
        assert b'"key":"hero-newsletter"' in tag
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()  # never left behind (its pipe would fail a later test), and say what it was doing
            out, _ = proc.communicate()
            pytest.fail("the demo did not stop within 15 s of SIGTERM; its last output:\n" + out[-3000:])
    assert proc.returncode == 0, out[-3000:]
    assert f"http://127.0.0.1:{shop_port}/?utm_source=newsletter" in out
    assert f"Store:                  SQLite {env['VITRINA_DATABASE']}" in out
