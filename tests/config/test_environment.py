"""Unknown `GATEWAY_*` variables are named, with the setting they were probably meant to be."""

from __future__ import annotations

from gateway.config.environment import CONFIG_FILE_ENV, known_variables, unknown_variables, warning


def test_a_misspelt_setting_is_named_with_the_closest_known_one() -> None:
    found = unknown_variables({"GATEWAY_DATABSE_URL": "postgresql://x", "GATEWAY_REDIS_ULR": "redis://x",
                               "GATEWAY_WORKER": "2", "GATEWAY_NOTHING_LIKE_IT": "1"})
    assert found == {"GATEWAY_DATABSE_URL": "GATEWAY_DATABASE_URL", "GATEWAY_REDIS_ULR": "GATEWAY_REDIS_URL",
                     "GATEWAY_WORKER": "GATEWAY_WORKERS", "GATEWAY_NOTHING_LIKE_IT": None}
    assert warning("GATEWAY_DATABSE_URL", "GATEWAY_DATABASE_URL") == (
        "GATEWAY_DATABSE_URL is not a setting; did you mean GATEWAY_DATABASE_URL?")
    assert warning("GATEWAY_NOTHING_LIKE_IT", None) == "GATEWAY_NOTHING_LIKE_IT is not a setting; it is ignored"


def test_known_variables_other_prefixes_and_the_tests_own_pass() -> None:
    environ = {"GATEWAY_MASTER_KEY": "k", "gateway_redis_url": "r", "GATEWAY_ENCRYPTION_KEY": "e",
               CONFIG_FILE_ENV: "/x.yaml", "GATEWAY_TEST_PG": "postgresql://t", "HOME": "/root", "OTHER_GATEWAY_X": "1"}
    assert unknown_variables(environ) == {}
    # Every setting has its variable, so a new setting is never reported as unknown.
    assert {"GATEWAY_DATABASE_URL", "GATEWAY_LIMITS_FAILURE_MODE", "GATEWAY_ADMIN_UI_ENABLED"} <= known_variables()
