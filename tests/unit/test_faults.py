"""The faults ``deployguard rehearse --faults`` injects: what each does to an answer, and that the
share of failing invocations is what it says, every run the same."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from deployguard_cli.localaws.faults import Fault, wrong_typed


@given(share=st.sampled_from([0.1, 0.25, 0.5, 1.0]), count=st.integers(min_value=1, max_value=400))
def test_a_share_of_errors_fails_that_share_of_any_run_of_invocations(share: float, count: int) -> None:
    fault = Fault("errors", share=share)

    failed = sum(fault.fails(n) for n in range(1, count + 1))

    assert failed == int(count * share)  # evenly spread: never more than one off at any point


def test_half_the_invocations_fail_every_second_one() -> None:
    fault = Fault("errors", share=0.5)

    assert [fault.fails(n) for n in range(1, 7)] == [False, True, False, True, False, True]


def test_wrong_type_turns_numbers_into_strings_at_every_depth() -> None:
    answer = {"total": 12, "items": [{"qty": 2, "price": 1.5}], "ok": True, "currency": "EUR"}

    assert json.loads(wrong_typed(json.dumps(answer))) == {
        "total": "12",
        "items": [{"qty": "2", "price": "1.5"}],
        "ok": "true",
        "currency": "EUR",
    }


def test_wrong_type_reaches_inside_an_api_gateway_proxy_body() -> None:
    answer = {"statusCode": 200, "body": json.dumps({"count": 3})}

    changed = json.loads(wrong_typed(json.dumps(answer)))

    assert changed["statusCode"] == "200"
    assert json.loads(changed["body"]) == {"count": "3"}


def test_an_answer_without_numbers_becomes_a_string() -> None:
    answer = {"message": "Hello"}

    assert json.loads(wrong_typed(json.dumps(answer))) == json.dumps(answer)


def test_an_answer_that_is_not_json_becomes_a_list() -> None:
    assert json.loads(wrong_typed("plain text")) == ["plain text"]
