"""Server settings: projects, ingest keys and API tokens, validated at start with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from fulfillwatch.incident_engine.settings import ServerSettings, SettingsError, load_settings
from support.serve import sha256

TOKEN = "a-random-api-token-0123456789"
DIGEST = sha256("fwk_key")


def _load(tmp_path: Path, text: str, **overrides: object) -> ServerSettings:
    config = tmp_path / "fulfillwatch.toml"
    config.write_text(text)
    return load_settings(config, api_token=TOKEN, **overrides)


def test_projects_and_keys_make_the_ingest_policy(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        f"""
[projects.shop]
services = ["shop-web", "shop-worker"]
[projects.billing]
services = ["billing-api"]
[ingest_keys.collector]
sha256 = "{DIGEST}"
projects = ["shop", "billing"]
""",
    )
    access = settings.ingest_access()
    assert access.required
    assert access.service_projects == {"shop-web": "shop", "shop-worker": "shop", "billing-api": "billing"}
    assert access.keys[DIGEST].name == "collector" and access.keys[DIGEST].projects == {"shop", "billing"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[projects.a]\nservices = ["web"]\n[projects.b]\nservices = ["web"]\n',
            "service 'web' is in projects 'a' and 'b'",
        ),
        (f'[ingest_keys.k]\nsha256 = "{DIGEST}"\nprojects = ["nowhere"]\n', "ingest_keys.k grants unknown project"),
        ('[ingest_keys.k]\nsha256 = "not-a-digest"\nprojects = ["x"]\n', "ingest_keys.k.sha256"),
        ('[projects."bad name!"]\nservices = ["web"]\n', "project name 'bad name!'"),
        ('[api_tokens.ops]\nsha256 = "' + DIGEST + '"\nscopes = ["root"]\n', "api_tokens.ops.scopes"),
    ],
)
def test_a_bad_project_key_or_token_is_refused_by_name(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        _load(tmp_path, text)


def test_ingest_auth_off_is_refused_unless_the_listeners_are_on_loopback(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="allowed only when the listeners bind to a loopback address"):
        _load(tmp_path, 'ingest_auth = "off"\n', host="0.0.0.0")
    settings = _load(tmp_path, 'ingest_auth = "off"\n', host="127.0.0.1")
    assert not settings.ingest_access().required


def test_keys_are_required_by_default_and_optional_only_in_demo(tmp_path: Path) -> None:
    assert _load(tmp_path, "").ingest_access().required
    assert not _load(tmp_path, "", demo=True).ingest_access().required
    assert _load(tmp_path, 'ingest_auth = "required"\n', demo=True).ingest_access().required


def test_the_older_ingest_projects_table_reads_as_a_project_and_a_key(tmp_path: Path) -> None:
    settings = _load(tmp_path, f'[ingest_projects.legacy]\nkey_sha256 = "{DIGEST}"\nservice = "legacy-shop"\n')
    access = settings.ingest_access()
    assert access.service_projects == {"legacy-shop": "legacy"}
    assert access.keys[DIGEST].projects == {"legacy"}


def test_named_tokens_alone_are_enough_but_no_token_at_all_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FULFILLWATCH_API_TOKEN", raising=False)
    config = tmp_path / "fulfillwatch.toml"
    config.write_text(f'[api_tokens.ops]\nsha256 = "{DIGEST}"\nscopes = ["operate"]\n')
    assert load_settings(config).token() == ""
    config.write_text("")
    with pytest.raises(SettingsError, match="FULFILLWATCH_API_TOKEN is not set and no \\[api_tokens\\]"):
        load_settings(config)


_STRIPE = '[stripe]\nservice = "shop-web"\nmode = "live"\n'


@pytest.mark.parametrize(
    ("key", "extra", "message"),
    [
        (None, "", "api_key_env: the variable STRIPE_API_KEY is not set"),
        ("rk_live_xxxxxxxxxxxxxxxx", "", "the Stripe key in $STRIPE_API_KEY is not a Stripe API key"),
        ("changeme", "", "is not a Stripe API key (expected rk_live_"),
        ("rk_test_51AbcdefghijKLMNOP", "", "is a test-mode key but stripe.mode is 'live'"),
        ("rk_live_51AbcdefghijKLMNOP", 'accounts = ["acme"]\n', "'acme' is not a Stripe account id"),
        ("rk_live_51AbcdefghijKLMNOP", 'backfill = "45d"\n', "longer than the 30 days Stripe keeps events"),
        ("rk_live_51AbcdefghijKLMNOP", 'api_base = "http://stripe.example.com"\n', "api_base must use https"),
        ("rk_live_51AbcdefghijKLMNOP", 'grace_s_by_type = { "x.y" = 60 }\n', "names types not in event_types"),
    ],
)
def test_a_bad_stripe_table_is_refused_at_start_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str | None, extra: str, message: str
) -> None:
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    if key is not None:
        monkeypatch.setenv("STRIPE_API_KEY", key)
    with pytest.raises(SettingsError, match="stripe") as refused:
        _load(tmp_path, _STRIPE + extra)
    assert message in str(refused.value)
    if key is not None:
        assert key not in str(refused.value)  # the key itself is never repeated


def test_a_stripe_key_from_a_file_and_plans_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "stripe-key"
    secret.write_text("rk_live_51FromAFileAbcdefghij\n")
    monkeypatch.setenv("FULFILLWATCH_PLANS", '{"checkout.session.completed": {"effects": ["unlock_access", "email"]}}')
    settings = _load(tmp_path, _STRIPE + f'api_key_file = "{secret}"\n')
    assert settings.stripe is not None and settings.stripe.key() == "rk_live_51FromAFileAbcdefghij"
    assert settings.plans["checkout.session.completed"].effects == ["unlock_access", "email"]
    assert "rk_live_51FromAFile" not in repr(settings) and "rk_live_51FromAFile" not in settings.model_dump_json()
