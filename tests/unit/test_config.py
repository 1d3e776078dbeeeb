"""Settings: every bad field named at once, unknown variables caught, secrets hidden."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd import config, errors


def test_defaults_need_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = config.load_settings()

    assert settings.database_url == "sqlite:///syncd.db"
    assert str(settings.lwa_token_url) == config.AMAZON_LWA_TOKEN_URL
    assert settings.environment == "production"
    assert settings.endpoint_override("eu") is None


def test_bad_fields_named_with_expected_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_ENVIRONMENT", "staging")
    monkeypatch.setenv("SYNCD_HTTP_READ_TIMEOUT", "-5")
    monkeypatch.setenv("SYNCD_SPAPI_ENDPOINT_EU", "not a url")
    monkeypatch.setenv("SYNCD_DATABASE_URL", "nonsense")

    with pytest.raises(errors.SettingsError) as caught:
        config.load_settings()

    variables = {problem.variable for problem in caught.value.problems}
    assert variables == {
        "SYNCD_ENVIRONMENT",
        "SYNCD_HTTP_READ_TIMEOUT",
        "SYNCD_SPAPI_ENDPOINT_EU",
        "SYNCD_DATABASE_URL",
    }
    message = str(caught.value)
    assert "'staging'" in message
    assert "production or sandbox" in message
    assert "https://sellingpartnerapi-eu.amazon.com" in message


def test_unknown_variable_gets_a_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_DATABSE_URL", "sqlite:///x.db")

    with pytest.raises(errors.SettingsError) as caught:
        config.load_settings()

    assert "did you mean SYNCD_DATABASE_URL?" in str(caught.value)


def test_test_variables_are_not_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_POSTGRESQL_URL", "postgresql://x")

    config.load_settings()


def test_secret_value_never_shown(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / "syncd.env"
    env_file.write_text("SYNCD_LWA_CLIENT_SECRET=\nSYNCD_LWA_CLIENT_ID=\n", encoding="utf-8")

    settings = config.load_settings(env_file)
    with pytest.raises(errors.SettingsError) as caught:
        settings.require_lwa_credentials()

    assert {p.variable for p in caught.value.problems} == {
        "SYNCD_LWA_CLIENT_ID",
        "SYNCD_LWA_CLIENT_SECRET",
    }


def test_env_file_and_environment_precedence(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / "syncd.env"
    env_file.write_text(
        "SYNCD_LWA_CLIENT_ID=from-file\nSYNCD_LWA_CLIENT_SECRET=file-secret\nSYNCD_ENVIRONMENT=sandbox\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("SYNCD_ENV_FILE", str(env_file))
    monkeypatch.setenv("SYNCD_LWA_CLIENT_ID", "from-env")

    settings = config.load_settings()

    assert settings.lwa_client_id == "from-env"
    assert settings.environment == "sandbox"
    assert "file-secret" not in repr(settings)
    assert settings.require_lwa_credentials()[1].get_secret_value() == "file-secret"


def test_missing_env_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(errors.SettingsError, match="SYNCD_ENV_FILE"):
        config.load_settings(tmp_path / "absent.env")


def test_secret_from_systemd_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "SYNCD_LWA_CLIENT_SECRET").write_text("cred-secret\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("SYNCD_LWA_CLIENT_ID", "id")

    settings = config.load_settings()

    assert settings.require_lwa_credentials()[1].get_secret_value() == "cred-secret"


def test_empty_env_line_keeps_credential(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "SYNCD_LWA_CLIENT_SECRET").write_text("cred-secret\n", encoding="utf-8")
    (credentials / "SYNCD_ENCRYPTION_KEY").write_text("cred-key\n", encoding="utf-8")
    env_file = tmp_path / "syncd.env"
    # As the example file ships: the secret lines are there, empty.
    env_file.write_text(
        "SYNCD_LWA_CLIENT_ID=id\nSYNCD_LWA_CLIENT_SECRET=\nSYNCD_ENCRYPTION_KEY=\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))

    settings = config.load_settings(env_file)

    assert settings.require_lwa_credentials()[1].get_secret_value() == "cred-secret"
    assert settings.encryption_key is not None
    assert settings.encryption_key.get_secret_value() == "cred-key"


def test_endpoint_override_drops_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_SPAPI_ENDPOINT_FE", "http://127.0.0.1:8402/")

    assert config.load_settings().endpoint_override("fe") == "http://127.0.0.1:8402"


def test_language_setting_read_before_everything(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / "syncd.env"
    env_file.write_text("SYNCD_LANGUAGE=zh_CN\nSYNCD_BROKEN=1\n", encoding="utf-8")

    assert config.read_language_setting({"SYNCD_ENV_FILE": str(env_file)}) == "zh_CN"
    assert config.read_language_setting({"SYNCD_LANGUAGE": "en"}) == "en"
    assert config.read_language_setting({}) is None


EXAMPLE = Path(__file__).resolve().parents[2] / "settings.example.env"


def test_example_env_file_documents_every_setting() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")

    for field in config.Settings.model_fields:
        assert f"SYNCD_{field.upper()}=" in text, field


def test_example_env_file_loads() -> None:
    settings = config.load_settings(EXAMPLE)

    assert settings.database_url == "sqlite:///syncd.db"


def test_env_file_mistakes_name_the_file(tmp_path: Path) -> None:
    env_file = tmp_path / "syncd.env"
    env_file.write_text(
        "DATABASE_URL=sqlite:///x.db\nSYNCD_LOG_LEVL=debug\nLANG=zh_CN.UTF-8\nTZ=Asia/Shanghai\n",
        encoding="utf-8",
    )

    with pytest.raises(errors.SettingsError) as caught:
        config.load_settings(env_file)

    problems = {problem.variable: problem.expected for problem in caught.value.problems}
    assert set(problems) == {"DATABASE_URL", "SYNCD_LOG_LEVL"}
    assert "SYNCD_DATABASE_URL" in problems["DATABASE_URL"]
    assert "SYNCD_LOG_LEVEL" in problems["SYNCD_LOG_LEVL"]
    assert all(str(env_file) in hint for hint in problems.values())


def test_unrelated_name_gets_no_wrong_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_FOO", "1")

    with pytest.raises(errors.SettingsError) as caught:
        config.load_settings()

    assert "did you mean" not in str(caught.value)


@pytest.mark.parametrize("value", ["zh", "zh-CN", "zh_CN.UTF-8", "zh_CN"])
def test_language_accepts_locale_spellings(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SYNCD_LANGUAGE", value)

    assert config.load_settings().language == "zh_CN"


def test_unsupported_language_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_LANGUAGE", "fr")

    with pytest.raises(errors.SettingsError, match="SYNCD_LANGUAGE"):
        config.load_settings()


def test_misspelt_secret_value_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_LWA_CLIENT_SECRETS", "amzn1.oa2-cs.v1.REALSECRET")

    with pytest.raises(errors.SettingsError) as caught:
        config.load_settings()

    assert "REALSECRET" not in str(caught.value)
    assert "SYNCD_LWA_CLIENT_SECRET?" in str(caught.value)


def test_env_file_line_without_prefix_hides_value(tmp_path: Path) -> None:
    env_file = tmp_path / "syncd.env"
    env_file.write_text("LWA_CLIENT_SECRET=REALSECRET\n", encoding="utf-8")

    with pytest.raises(errors.SettingsError) as caught:
        config.load_settings(env_file)

    assert "REALSECRET" not in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SYNCD_DATABASE_URL", "postgresql+psycopg://syncd:Db-Passw0rd@db.local:54x32/syncd"),
        ("SYNCD_HTTPS_PROXY", "http://user:Proxy-Passw0rd@proxy.local:99999"),
    ],
)
def test_invalid_url_hides_its_password(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(errors.SettingsError) as caught:
        config.load_settings()

    assert "Passw0rd" not in str(caught.value)
    assert "***" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("postgres://syncd@db.local/syncd", "not postgres://"),
        ("mysql+mysqldb://root@db.local/syncd", "the driver mysqldb is not installed"),
        ("oracle://scott@db.local/orcl", "not oracle"),
    ],
)
def test_database_url_syncd_cannot_use_is_named(
    monkeypatch: pytest.MonkeyPatch, url: str, hint: str
) -> None:
    monkeypatch.setenv("SYNCD_DATABASE_URL", url)

    with pytest.raises(errors.SettingsError) as caught:
        config.load_settings()

    assert "SYNCD_DATABASE_URL" in str(caught.value)
    assert hint in str(caught.value)


def test_settings_repr_hides_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_DATABASE_URL", "postgresql+psycopg://syncd:Db-Passw0rd@db/syncd")
    monkeypatch.setenv("SYNCD_HTTPS_PROXY", "http://user:Proxy-Passw0rd@proxy.local:3128")

    text = repr(config.load_settings())

    assert "Passw0rd" not in text


def test_env_file_in_gbk_is_named(tmp_path: Path) -> None:
    env_file = tmp_path / "syncd.env"
    env_file.write_bytes("# 亚马逊设置\nSYNCD_LOG_LEVEL=info\n".encode("gbk"))

    with pytest.raises(errors.SettingsError, match="UTF-8"):
        config.load_settings(env_file)


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("SYNCD_LWA_TOKEN_URL", "http://tokens.example.cn/auth/o2/token", "https"),
        ("SYNCD_SPAPI_ENDPOINT_EU", "http://sellingpartnerapi-eu.amazon.com", "https"),
        ("SYNCD_SPAPI_ENDPOINT_NA", "http://127.0.0.1:8400/?x=1", "query"),
    ],
)
def test_unsafe_endpoint_is_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, problem: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(errors.SettingsError, match=problem) as caught:
        config.load_settings()

    assert [p.variable for p in caught.value.problems] == [variable]


@pytest.mark.parametrize("host", ["127.0.0.1:8400", "localhost:8400", "[::1]:8400"])
def test_plain_http_allowed_on_loopback(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    monkeypatch.setenv("SYNCD_SPAPI_ENDPOINT_NA", f"http://{host}")

    assert config.load_settings().endpoint_override("na") == f"http://{host}"


def test_failure_recheck_has_a_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_AUTH_FAILURE_RECHECK", "0")

    with pytest.raises(errors.SettingsError, match="SYNCD_AUTH_FAILURE_RECHECK"):
        config.load_settings()
