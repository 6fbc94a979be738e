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
