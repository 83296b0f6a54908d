"""VITRINA_* settings: validated at start-up with errors that name the variable."""
import subprocess
import sys

import pytest

from server.events.batch import MAX_EVENT_AGE_S, MAX_EVENT_AHEAD_S
from server.settings import MIN_DEDUPE_DAYS, ConfigError, load_config
from tests.servers import REPO


@pytest.mark.parametrize("env, name", [
    ({"VITRINA_PROXY_HOPS": "two"}, "VITRINA_PROXY_HOPS"),
    ({"VITRINA_PROXY_HOPS": "99"}, "VITRINA_PROXY_HOPS"),
    ({"VITRINA_REDIS_URL": "http://localhost"}, "VITRINA_REDIS_URL"),
    ({"VITRINA_GEOIP_DB": "/nonexistent/city.mmdb"}, "VITRINA_GEOIP_DB"),
    ({"VITRINA_SECRET_KEY": "short"}, "VITRINA_SECRET_KEY"),
    ({"VITRINA_SECRET_KEY": "a-long-enough-secret-key,tiny"}, "VITRINA_SECRET_KEY"),
    ({"VITRINA_COLLECT_MAX_BYTES": "-5"}, "VITRINA_COLLECT_MAX_BYTES"),
    ({"VITRINA_DEDUPE_DAYS": "3"}, "VITRINA_DEDUPE_DAYS"),  # shorter than collect accepts events to be old
    ({"VITRINA_DEDUPE_DAYS": "a week"}, "VITRINA_DEDUPE_DAYS"),
    ({"VITRINA_VISITOR_DAYS": "0"}, "VITRINA_VISITOR_DAYS"),
])
def test_bad_setting_is_named(tmp_path, env, name):
    with pytest.raises(ConfigError, match=name):
        load_config({"VITRINA_DATABASE": str(tmp_path / "db.sqlite3"), **env})


def test_the_shortest_dedupe_window_outlasts_the_oldest_event_collect_accepts(tmp_path):
    # an event is accepted while its receipt lies in [ts - ahead, ts + age]: the first copy and a
    # retry are at most that far apart, and the store remembers the first at least its window
    assert MIN_DEDUPE_DAYS * 86_400 >= MAX_EVENT_AGE_S + MAX_EVENT_AHEAD_S
    config = load_config({"VITRINA_DATABASE": str(tmp_path / "db.sqlite3")})
    assert config["VITRINA_DEDUPE_DAYS"] * 86_400 > MAX_EVENT_AGE_S and config["VITRINA_VISITOR_DAYS"] == 400


def test_default_secret_key_is_generated_once_beside_the_database(tmp_path):
    env = {"VITRINA_DATABASE": str(tmp_path / "data" / "db.sqlite3")}
    first = load_config(env)["VITRINA_SECRET_KEYS"]
    second = load_config(env)["VITRINA_SECRET_KEYS"]
    key_file = tmp_path / "data" / "secret_key"
    assert first == second == [key_file.read_text().strip()]
    assert len(first[0]) >= 32
    assert key_file.stat().st_mode & 0o077 == 0


def test_rotation_keys_keep_their_order(tmp_path):
    keys = load_config({"VITRINA_DATABASE": str(tmp_path / "d.sqlite3"),
                        "VITRINA_SECRET_KEY": "new-key-0123456789abc, old-key-0123456789abc"})["VITRINA_SECRET_KEYS"]
    assert keys == ["new-key-0123456789abc", "old-key-0123456789abc"]


def test_cli_refuses_to_start_with_a_bad_setting(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "VITRINA_DATABASE": str(tmp_path / "db.sqlite3"), "VITRINA_PROXY_HOPS": "x"}
    proc = subprocess.run([sys.executable, "-m", "server.cli", "sites", "list"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "VITRINA_PROXY_HOPS" in proc.stderr


def test_the_default_database_is_in_the_per_user_data_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    config = load_config({"HOME": str(home)})
    assert config["VITRINA_DATABASE"] == str(home / ".local" / "share" / "vitrina" / "vitrina.sqlite3")
    assert (home / ".local" / "share" / "vitrina" / "secret_key").exists()
    assert config["VITRINA_SPOOL_DIR"] == str(home / ".local" / "share" / "vitrina" / "spool")
    data = tmp_path / "data"
    assert load_config({"HOME": str(home), "XDG_DATA_HOME": str(data)})["VITRINA_DATABASE"] == \
        str(data / "vitrina" / "vitrina.sqlite3")
    # the XDG spec: a relative XDG_DATA_HOME is invalid and ignored
    assert load_config({"HOME": str(home), "XDG_DATA_HOME": "relative"})["VITRINA_DATABASE"] == \
        str(home / ".local" / "share" / "vitrina" / "vitrina.sqlite3")
    assert not (tmp_path / "relative").exists() and not (tmp_path / "var").exists()


def test_a_relative_database_setting_is_made_absolute_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config({"VITRINA_DATABASE": "db/v.sqlite3"})["VITRINA_DATABASE"] == str(tmp_path / "db" / "v.sqlite3")
