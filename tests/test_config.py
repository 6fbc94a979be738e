"""Settings: where tokens come from, and the configurations the gateway refuses."""

import pytest

from gateway import config
from gateway.errors import ConfigurationError


def test_no_token_refuses_with_a_message_that_says_what_to_set():
    with pytest.raises(ConfigurationError, match="WRAPGATE_SYSTEM_TOKEN"):
        config.load({})


def test_tokens_from_environment_file_and_config_are_all_valid(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("# rotated 2026-11\nfrom-file\n\nsecond-from-file\n")
    conf = tmp_path / "gateway.toml"
    conf.write_text('system_tokens = ["from-config"]\n')
    settings = config.load(
        {
            "WRAPGATE_SYSTEM_TOKEN": "env-a, env-b",
            "WRAPGATE_SYSTEM_TOKEN_FILE": str(token_file),
            "WRAPGATE_CONFIG": str(conf),
        }
    )
    assert settings.system_tokens == ("from-config", "env-a", "env-b", "from-file", "second-from-file")


def test_unreadable_token_file_is_named(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot be read"):
        config.load({"WRAPGATE_SYSTEM_TOKEN_FILE": str(tmp_path / "missing")})


def test_environment_overrides_file(tmp_path):
    conf = tmp_path / "gateway.toml"
    conf.write_text('system_token = "t"\ncall_timeout = 10\n[aliases]\nping = "sql.ping"\n')
    settings = config.load({"WRAPGATE_CONFIG": str(conf), "WRAPGATE_CALL_TIMEOUT": "20"})
    assert settings.call_timeout == 20.0
    assert settings.aliases == {"ping": "sql.ping"}


@pytest.mark.parametrize(
    "toml, message",
    [
        ('system_token = "t"\nunknown_knob = 1\n', "unknown setting"),
        ('system_token = "t"\n[aliases]\nping = "noconnector"\n', "wire name"),
        ('system_token = "t"\ndefault_level = 30\n', "default_level"),
        ('system_token = "t"\nlimiter = "redis"\n', "WRAPGATE_REDIS_URL"),
        ('system_token = "t"\n[levels]\nc1 = 0\n', "levels.c1"),
        ('system_token = = "t"\n', "not valid TOML"),
    ],
)
def test_bad_configuration_is_refused(tmp_path, toml, message):
    conf = tmp_path / "gateway.toml"
    conf.write_text(toml)
    with pytest.raises(ConfigurationError, match=message):
        config.load({"WRAPGATE_CONFIG": str(conf)})


def test_bad_numbers_in_the_environment_are_refused():
    with pytest.raises(ConfigurationError, match="WRAPGATE_CALL_TIMEOUT must be a number"):
        config.load({"WRAPGATE_SYSTEM_TOKEN": "t", "WRAPGATE_CALL_TIMEOUT": "soon"})
    with pytest.raises(ConfigurationError, match="WRAPGATE_STRICT_PLUGINS must be true or false"):
        config.load({"WRAPGATE_SYSTEM_TOKEN": "t", "WRAPGATE_STRICT_PLUGINS": "maybe"})


def test_level_above_25_is_capped():
    assert config.load({"WRAPGATE_SYSTEM_TOKEN": "t"}, levels={"c": 40}).levels == {"c": 25}


# -- one source of settings: gunicorn derives its own from Settings ----------------


def test_server_settings_come_from_the_file_with_the_environment_parser(tmp_path):
    conf = tmp_path / "gateway.toml"
    conf.write_text(
        'call_timeout = 600\ngraceful_timeout = 700\nworkers = 3\nkeepalive = 75\nlog_level = "debug"\n'
    )
    settings = config.load({"WRAPGATE_CONFIG": str(conf)}, require_token=False)
    assert (settings.call_timeout, settings.graceful_seconds, settings.workers) == (600.0, 700, 3)
    assert settings.worker_timeout > 600 and settings.keepalive == 75.0
    conf.write_text('call_timeout = "soon"\n')
    with pytest.raises(ConfigurationError, match=r"call_timeout in .* must be a number"):
        config.load({"WRAPGATE_CONFIG": str(conf)}, require_token=False)


def test_graceful_timeout_follows_the_call_timeout_unless_set():
    assert config.load({"WRAPGATE_CALL_TIMEOUT": "600"}, require_token=False).graceful_seconds == 610
    env = {"WRAPGATE_CALL_TIMEOUT": "600", "WRAPGATE_GRACEFUL_TIMEOUT": "900"}
    assert config.load(env, require_token=False).graceful_seconds == 900


def test_platform_port_and_concurrency_apply_unless_wrapgate_variables_say_otherwise():
    settings = config.load({"PORT": "9000", "WEB_CONCURRENCY": "4"}, require_token=False)
    assert (settings.bind, settings.workers) == ("0.0.0.0:9000", 4)
    env = {"PORT": "9000", "WRAPGATE_BIND": "127.0.0.1:8100", "WRAPGATE_WORKERS": "2"}
    settings = config.load(env, require_token=False)
    assert (settings.bind, settings.workers) == ("127.0.0.1:8100", 2)


@pytest.mark.slow
def test_a_toml_file_alone_sets_the_timeouts_gunicorn_runs_with(start_gateway, tmp_path):
    conf = tmp_path / "gateway.toml"
    conf.write_text('call_timeout = 600\nkeepalive = 75\nlog_level = "debug"\n')
    server = start_gateway({"WRAPGATE_CONFIG": str(conf)}, workers=1)
    # gunicorn prints the configuration it runs with at debug level.
    log = server.log()
    assert "timeout: 630" in log and "graceful_timeout: 610" in log and "keepalive: 75" in log
    answer = server.call("kit.ping", {"connection": {"unencrypted": {"mode": "context"}}})
    assert answer.status_code == 200


def test_every_variable_is_a_setting_and_is_in_the_readme():
    import dataclasses
    from pathlib import Path

    fields = {f.name for f in dataclasses.fields(config.Settings)}
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for variable, (setting, _) in config.ENVIRONMENT.items():
        assert setting in fields, variable
        assert f"| `{variable}` |" in readme, f"{variable} is missing from the README's configuration table"


def test_the_in_flight_cap_sits_below_the_worker_connections_so_it_can_fire():
    settings = config.load({"WRAPGATE_WORKER_CONNECTIONS": "1000"}, require_token=False)
    assert settings.in_flight_cap == 800 < settings.worker_connections
    assert config.load({"WRAPGATE_MAX_IN_FLIGHT": "5"}, require_token=False).in_flight_cap == 5
