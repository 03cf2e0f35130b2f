"""cluster.toml: init writes what load reads; every mistake is one clear ConfigError."""

import stat

import pytest

from node.config import ConfigError, init_cluster, load_config, load_private_key, public_bytes


def test_init_then_load_round_trip(tmp_path):
    path = init_cluster(tmp_path / "c", nodes=7, base_port=8000, http_base_port=9000)
    cfg = load_config(path)
    assert cfg.n == 7 and cfg.f == 2
    assert [r.port for r in cfg.replicas] == list(range(8000, 8007))
    assert [r.http_port for r in cfg.replicas] == list(range(9000, 9007))
    assert cfg.section("breaker") == {
        "failure_threshold": 5,
        "open_timeout_s": 30.0,
        "half_open_max_calls": 3,
        "success_threshold": 2,
        "request_timeout_s": 10.0,
        "max_open_timeout_s": 300.0,
        "backoff_multiplier": 2.0,
        "jitter": 0.1,
        "backoff_decay_s": 60.0,
    }
    for i in range(7):
        key_file = cfg.replica_key_path(i)
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert public_bytes(load_private_key(key_file)) == cfg.replica(i).public_key
    assert public_bytes(load_private_key(cfg.client_key_path())) == cfg.clients[0].public_key


def test_init_refuses_to_overwrite(tmp_path):
    init_cluster(tmp_path)
    with pytest.raises(ConfigError, match="already exists"):
        init_cluster(tmp_path)


def _edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("failure_threshold = 5", "failure_threshold = 0", "failure_threshold must be >= 1"),
        ("failure_threshold = 5", "failure_treshold = 5", "unknown key"),
        ("open_timeout_s = 30.0", 'open_timeout_s = "x"', "must be float"),
        ("f = 1", "f = 2", "cannot tolerate f=2"),
        ("[cluster]", "[cluster", "not valid TOML"),
        ("port = 7001", "port = 70001", "is not a TCP port"),
        ("id = 3", "id = 5", "replica ids must be 0..3"),
        ("tentative_execution = true", "tentative_execution = 1", "must be true or false"),
    ],
)
def test_config_mistakes_are_one_clear_line(tmp_path, old, new, message):
    path = init_cluster(tmp_path)
    _edit(path, old, new)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert "\n" not in str(info.value)


def test_missing_file_and_unknown_id(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    cfg = load_config(init_cluster(tmp_path))
    with pytest.raises(ConfigError, match="unknown replica id 9"):
        cfg.replica(9)


def test_bad_key_files(tmp_path):
    cfg = load_config(init_cluster(tmp_path))
    with pytest.raises(ConfigError, match="key file not found"):
        load_private_key(tmp_path / "keys" / "missing.key")
    bad = cfg.replica_key_path(0)
    bad.write_text("zz\n")
    with pytest.raises(ConfigError, match="not hex"):
        load_private_key(bad)
    bad.write_text("abcd\n")
    with pytest.raises(ConfigError, match="32 bytes"):
        load_private_key(bad)
