"""HTML form fields become admin API bodies: empty means no cap (left out, or cleared on edit)."""

from __future__ import annotations

import pytest

from admin.ui.forms import Feedback, key_body, models_list, stored_values, team_body
from gateway.core.errors import InvalidRequest


def test_team_fields_on_create_and_on_edit() -> None:
    form = {"name": " search ", "rpm": "60", "tpm": "", "max_parallel": "x", "budget_usd": "12.50",
            "budget_period": "monthly", "metadata": '{"owner": "s"}'}
    assert team_body(form, for_update=False) == {
        "name": "search", "rpm": 60, "max_parallel": "x", "budget_usd": "12.50", "budget_period": "monthly",
        "metadata": {"owner": "s"}}
    edited = team_body({**form, "rpm": "", "metadata": ""}, for_update=True)
    assert edited["rpm"] is None and edited["tpm"] is None and "metadata" not in edited


def test_key_fields() -> None:
    body = key_body({"name": "k", "allowed_models": "a, b\nc,,", "expires_at": "2030-01-02T03:04",
                     "team_id": "", "is_admin": "on"}, for_update=False)
    assert body == {"name": "k", "allowed_models": ["a", "b", "c"], "expires_at": "2030-01-02T03:04:00+00:00",
                    "is_admin": True}
    edit = key_body({"name": "k", "allowed_models": " "}, for_update=True)
    assert edit["allowed_models"] is None and edit["team_id"] is None and edit["expires_at"] is None
    assert edit["is_admin"] is False
    assert models_list("") is None


@pytest.mark.parametrize("metadata", ["{", "[1]", '"text"'])
def test_metadata_must_be_a_json_object(metadata: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        team_body({"name": "t", "metadata": metadata}, for_update=False)
    assert caught.value.param == "metadata"


def test_feedback_points_at_the_form_field() -> None:
    feedback = Feedback.of(InvalidRequest("Invalid value for 'allowed_models[1]': no.", param="allowed_models[1]"))
    assert feedback.field == "allowed_models" and feedback.errors == {"allowed_models": feedback.message}
    assert Feedback.of(InvalidRequest("Bad.")).errors == {}


def test_stored_values_fill_an_edit_form() -> None:
    values = stored_values({"name": "t", "team_id": None, "rpm": 5, "tpm": None, "max_parallel": None,
                            "budget_usd": "2.5", "budget_period": None, "metadata": {"a": 1}})
    assert values["rpm"] == "5" and values["tpm"] == "" and values["budget_usd"] == "2.5"
    assert '"a": 1' in values["metadata"]
