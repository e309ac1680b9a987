"""Hostile policies: whatever a policy file or the stored policy holds, parsing it is bounded
(size, depth, nodes, YAML aliases), its regular expressions run in linear time (RE2), payload
files stay in the policy's folder, and `deployguard policy check` answers with an error and an
exit code — never a traceback, a hang or megabytes of output.

Each input goes through `load_policy` (what the hooks run on the stored policy) and through
`deployguard policy check` (what a pipeline runs on the file).
"""

from __future__ import annotations

import contextlib
import json
import time
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deployguard.config_check import validate_config
from deployguard.documents import MAX_DEPTH, MAX_DOCUMENT_BYTES, MAX_NODES, MAX_YAML_ALIASES
from deployguard.patterns import MAX_MATCHED_CHARS
from deployguard.policy import (
    MAX_PATTERN_INSTRUCTIONS,
    MAX_REPORTED_ISSUES,
    ConfigRules,
    Expectation,
    FunctionPolicy,
    InvalidPolicyError,
    Policy,
    SmokeCase,
    UnreadablePolicyError,
    ValueRule,
    inline_payloads,
    load_policy,
)
from deployguard.smoke import check_expectation
from deployguard.snapshot import FunctionSnapshot
from deployguard.stages import Stage
from deployguard_cli.commands.policy import read_policy
from deployguard_cli.exit_codes import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK
from deployguard_cli.main import main

# NOTE: read_policy's module is imported here, at collection, not first inside a test: it brings in
# urllib3, whose import probes for IPv6 by binding ::1, which the unit tier's socket guard refuses.

HEAD = "version: 1\nstage: prod\n"
VALID = HEAD + "functions:\n  orders:\n    smoke: [{name: ping, payload: {action: ping}}]\n"


def alias_bomb(levels: int) -> str:
    """'Billion laughs': each level repeats the one before nine times (9**levels strings).

    The reported one has 9 levels (700 bytes); 6 already expand past MAX_NODES, and fail quickly
    where nothing bounds the expansion instead of taking the machine's memory.
    """
    lines = [HEAD.rstrip("\n"), 'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [" + ",".join([f"*l{level - 1}"] * 9) + "]")
    lines.append(f"functions: {{orders: {{smoke: [{{name: x, payload: *l{levels - 1}}}]}}}}")
    return "\n".join(lines) + "\n"


def nested(depth: int, *, json_document: bool) -> str:
    payload = "[" * depth + "]" * depth
    if json_document:
        return (
            '{"version": 1, "stage": "prod", "functions": {"orders": {"smoke": '
            f'[{{"name": "x", "payload": {payload}}}]}}}}}}'
        )
    return HEAD + f"functions: {{orders: {{smoke: [{{name: x, payload: {payload}}}]}}}}\n"


def wrong_types(count: int) -> str:
    """``count`` smoke cases that are numbers instead of mappings: one error each."""
    return json.dumps({"version": 1, "stage": "prod", "functions": {"orders": {"smoke": [1] * count}}})


def oversized() -> str:
    return VALID + "# " + "x" * MAX_DOCUMENT_BYTES + "\n"


def check(path: Path, capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, str]:
    """`deployguard policy check` on one file: its exit code and everything it printed."""
    code = main(["policy", "check", *options, str(path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# --- limits before validation: the hook's path and the pipeline's ------------------------------

OVER_A_LIMIT = {
    "alias bomb": (alias_bomb(9), "MAX_NODES"),
    "small alias bomb": (alias_bomb(6), "MAX_NODES"),
    "deep JSON": (nested(50_000, json_document=True), "MAX_DEPTH"),
    "deep YAML": (nested(50_000, json_document=False), "MAX_DEPTH"),
    "one level too deep": (nested(MAX_DEPTH - 4, json_document=True), "MAX_DEPTH"),
    "oversized": (oversized(), "MAX_DOCUMENT_BYTES"),
    "too many values": (wrong_types(MAX_NODES), "MAX_NODES"),
    "too many aliases": (
        HEAD + "functions: {orders: {smoke: [&s {name: a}, " + "*s, " * (MAX_YAML_ALIASES + 1) + "]}}\n",
        "MAX_YAML_ALIASES",
    ),
}


@pytest.mark.parametrize("text, limit", OVER_A_LIMIT.values(), ids=OVER_A_LIMIT.keys())
def test_the_hook_refuses_a_policy_over_a_limit_naming_the_limit_and_the_fix(text: str, limit: str) -> None:
    with pytest.raises(UnreadablePolicyError) as caught:
        load_policy(text, "ssm:/deployguard/prod/policy", stage=Stage.PROD)

    (issue,) = caught.value.issues
    assert issue.path == "(document)"
    assert limit in issue.problem
    assert issue.fix


@pytest.mark.parametrize("text, limit", OVER_A_LIMIT.values(), ids=OVER_A_LIMIT.keys())
def test_policy_check_exits_2_for_a_policy_over_a_limit(
    text: str, limit: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "prod.yaml"
    path.write_text(text)

    code, out = check(path, capsys)

    assert code == EXIT_ERROR
    assert f"{path}: cannot be checked" in out
    assert limit in out and "fix:" in out
    assert len(out) < 2_000


def test_the_largest_nesting_within_the_limit_still_loads() -> None:
    # the document is 5 levels deep at the payload, which may fill the rest
    load_policy(nested(MAX_DEPTH - 5, json_document=True))


def test_a_yaml_alias_that_contains_itself_is_refused() -> None:
    with pytest.raises(UnreadablePolicyError, match="recursive document"):
        load_policy(HEAD + "functions: {orders: {smoke: [{name: x, payload: &loop [*loop]}]}}\n")


def test_yaml_aliases_to_shared_parts_still_load() -> None:
    policy = load_policy(
        HEAD
        + "functions:\n"
        + "  orders: {config: &common {required: [DATABASE_URL]}}\n"
        + "  billing: {config: *common}\n"
    )

    assert policy.functions["billing"].config.required == ["DATABASE_URL"]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("\x00\x01\x02 binary", "not valid YAML or JSON"),
        (HEAD + "functions: {orders: {smoke_concurrency: " + "1" * 5_000 + "}}\n", "invalid YAML value"),
        (HEAD + "functions: {orders: {match: 2024-02-30}}\n", "invalid YAML value"),
        (HEAD + "functions: {orders: {match: !!timestamp soon}}\n", "invalid YAML value"),
        (HEAD + "functions: {orders: {smoke_concurrency: !!int }}\n", "invalid YAML value"),
        (
            '{"version": 1, "stage": "prod", "functions": {"a": {"smoke_concurrency": ' + "1" * 5_000 + "}}}",
            "invalid JSON",
        ),
    ],
    ids=[
        "control characters",
        "a 5000-digit YAML integer",
        "a date that does not exist",
        "a tagged timestamp that is none",
        "a tagged integer with no digits",
        "a 5000-digit JSON integer",
    ],
)
def test_text_the_parsers_cannot_build_is_a_parse_error_not_a_crash(text: str, problem: str) -> None:
    with pytest.raises(UnreadablePolicyError) as caught:
        load_policy(text)

    assert problem in caught.value.issues[0].problem


YAML_TOKENS = [*"{}[]:,-&*!|>'\"#%@?\n \\ab01.", "&a ", "*a", "<<: ", "? ", "---\n", "!!binary ", "!!set "]
YAML_TOKENS += ["!!timestamp ", "!!int ", "!!float ", "!!python/object:os.system ", "2024-02-30", "\ufeff"]


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.sampled_from(YAML_TOKENS), max_size=40).map("".join))
def test_any_text_in_a_policy_is_a_policy_or_a_policy_error(fragment: str) -> None:
    for text in (fragment, HEAD + "functions: {orders: {smoke: [{name: x, payload: " + fragment + "}]}}\n"):
        with contextlib.suppress(InvalidPolicyError):  # anything else (a crash, a hang) fails the test
            load_policy(text)


def test_policy_check_of_a_binary_file_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "logo.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))

    code, out = check(path, capsys)

    assert code == EXIT_ERROR
    assert f"{path} is not UTF-8 text" in out
    assert "Traceback" not in out
    with pytest.raises(UnreadablePolicyError, match="is not UTF-8 text"):  # `deployguard check --policy`
        read_policy(path, stage=Stage.PROD)


def test_policy_check_reads_no_more_of_a_file_than_the_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(VALID.encode() + b"#" * (3 * MAX_DOCUMENT_BYTES))

    code, out = check(path, capsys)

    assert code == EXIT_ERROR
    assert f"the document is {path.stat().st_size:,} bytes; the limit is {MAX_DOCUMENT_BYTES:,}" in out


# --- bounded output ------------------------------------------------------------------------------


def test_many_wrong_values_report_the_first_errors_and_count_the_rest() -> None:
    count = MAX_NODES // 2

    with pytest.raises(InvalidPolicyError) as caught:
        load_policy(wrong_types(count), "ssm:/deployguard/prod/policy")

    error = caught.value
    assert not isinstance(error, UnreadablePolicyError)
    assert len(error.issues) == MAX_REPORTED_ISSUES
    assert error.total == count
    assert error.issues[0].path == "functions.orders.smoke[0]"
    assert str(error).endswith(f"… and {count - MAX_REPORTED_ISSUES} more")
    assert len(str(error)) < 10_000


def test_policy_check_of_many_wrong_values_prints_a_bounded_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    count = MAX_NODES // 2
    path = tmp_path / "prod.json"
    path.write_text(wrong_types(count))

    code, out = check(path, capsys)

    assert code == EXIT_FINDINGS
    lines = out.splitlines()
    assert lines[0] == f"{path}: {count} error(s)"
    assert len(lines) == 1 + MAX_REPORTED_ISSUES + 1
    assert lines[-1] == f"  … and {count - MAX_REPORTED_ISSUES} more: fix these and check again"

    code, out = check(path, capsys, "--json")
    (report,) = json.loads(out)
    assert report["error_count"] == count and len(report["errors"]) == MAX_REPORTED_ISSUES
    assert report["readable"] is True


def test_a_key_of_any_length_is_shown_clipped() -> None:
    with pytest.raises(InvalidPolicyError) as caught:
        load_policy(json.dumps({"version": 1, "stage": "prod", "functions": {"orders": {"k" * 100_000: 1}}}))

    (issue,) = caught.value.issues
    assert issue.path.startswith("functions.orders.kkk") and len(issue.path) < 120


# --- exit codes ----------------------------------------------------------------------------------


def test_policy_check_exit_codes_the_worst_file_decides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    valid, invalid, unreadable = tmp_path / "valid.yaml", tmp_path / "invalid.yaml", tmp_path / "missing.yaml"
    valid.write_text(VALID)
    invalid.write_text(HEAD + "functions: {orders: {smoke_concurrency: many}}\n")

    assert main(["policy", "check", str(valid)]) == EXIT_OK
    assert main(["policy", "check", str(valid), str(invalid)]) == EXIT_FINDINGS
    assert main(["policy", "check", str(invalid), str(unreadable), str(valid)]) == EXIT_ERROR
    out = capsys.readouterr().out
    assert f"{unreadable}: cannot be checked" in out and "No such file or directory" in out


def test_invalid_syntax_is_exit_2_not_a_finding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "prod.yaml"
    path.write_text(HEAD + "functions: [\n")

    code, out = check(path, capsys)

    assert code == EXIT_ERROR
    assert "not valid YAML or JSON" in out


# --- regular expressions: RE2, checked when the policy is ---------------------------------------

CATASTROPHIC = "^(a|aa)+$"
NEAR_MISS = "a" * 38 + "b"  # 39 characters: Python's re backtracks for about 18 s


def test_a_catastrophic_deny_pattern_is_matched_in_linear_time() -> None:
    rules = ConfigRules(stage_variable=None, rules=[ValueRule(variable="NAME", deny=[CATASTROPHIC])])
    target = FunctionSnapshot(
        function_name="orders", version="2", runtime="python3.12", environment={"NAME": NEAR_MISS}
    )

    started = time.perf_counter()
    findings = validate_config(target, None, rules, Stage.PROD, reference_exists=None, today=date(2026, 1, 1))

    # generous: RE2 answers in microseconds; the backtracking engine took 18 s
    assert time.perf_counter() - started < 6
    assert not [f for f in findings if f.code == "CFG003"]


def test_a_catastrophic_smoke_regex_is_matched_in_linear_time() -> None:
    started = time.perf_counter()
    problem = check_expectation({"id": NEAR_MISS}, Expectation(path="$.id", regex=CATASTROPHIC))

    assert time.perf_counter() - started < 6
    assert problem is not None and "does not match" in problem


@pytest.mark.parametrize(
    "rule, path",
    [
        (
            "{config: {rules: [{variable: X, deny: ['ok', '(?=a)a']}]}}",
            "functions.orders.config.rules[0].deny",
        ),
        ("{config: {rules: [{variable: X, allow: ['(a)\\1']}]}}", "functions.orders.config.rules[0].allow"),
        (
            "{smoke: [{name: x, expect: [{path: $.a, regex: '(?<!a)b'}]}]}",
            "functions.orders.smoke[0].expect[0].regex",
        ),
        (
            "{config: {rules: [{variable: X, deny: ['(?:.|\\n){1000}c']}]}}",
            "functions.orders.config.rules[0].deny",
        ),
    ],
    ids=["lookahead", "backreference", "lookbehind", "too big a program"],
)
def test_a_pattern_re2_cannot_run_is_a_policy_error_naming_the_field(rule: str, path: str) -> None:
    with pytest.raises(InvalidPolicyError) as caught:
        load_policy(HEAD + f"functions: {{orders: {rule}}}\n")

    (issue,) = caught.value.issues
    assert issue.path == path
    assert "RE2" in issue.problem


def test_the_patterns_of_a_policy_share_one_budget_of_re2_instructions() -> None:
    # each pattern alone is within RE2's limits; a hundred of them would take seconds to match
    big = [f"(?:.|\\n){{400}}c{i}" for i in range(100)]
    rules = [{"variable": "URL", "deny": big[:50]}, {"variable": "HOST", "deny": big[50:]}]
    document = {"version": 1, "stage": "prod", "functions": {"orders": {"config": {"rules": rules}}}}

    with pytest.raises(InvalidPolicyError) as caught:
        load_policy(json.dumps(document))

    (issue,) = caught.value.issues  # reported once, where the budget ran out
    assert issue.path == "functions.orders.config.rules[0].deny"
    assert f"{MAX_PATTERN_INSTRUCTIONS:,} RE2 instructions (MAX_PATTERN_INSTRUCTIONS)" in issue.problem


def test_a_policy_value_is_matched_on_its_first_characters_only() -> None:
    rules = ConfigRules(stage_variable=None, rules=[ValueRule(variable="URL", deny=[r"\.prod\."])])
    value = "x" * MAX_MATCHED_CHARS + ".prod."  # Lambda caps all variables together at 4 KB
    target = FunctionSnapshot(
        function_name="orders", version="2", runtime="python3.12", environment={"URL": value}
    )

    findings = validate_config(target, None, rules, Stage.PROD, reference_exists=None, today=date(2026, 1, 1))

    assert not [f for f in findings if f.code == "CFG003"]


def test_a_smoke_regex_on_a_longer_string_fails_rather_than_reading_part_of_it() -> None:
    problem = check_expectation(
        {"page": "a" * (MAX_MATCHED_CHARS + 1)}, Expectation(path="$.page", regex="^a+$")
    )

    assert problem is not None
    assert f"a regex expectation reads at most {MAX_MATCHED_CHARS:,}" in problem


def test_dollar_still_matches_before_a_final_newline_as_it_did_with_re() -> None:
    rules = ConfigRules(
        stage_variable=None, rules=[ValueRule(variable="HOST", deny=[r"\.prod\.example\.com$"])]
    )
    target = FunctionSnapshot(
        function_name="orders",
        version="2",
        runtime="python3.12",
        environment={"HOST": "db.prod.example.com\n"},
    )

    findings = validate_config(target, None, rules, Stage.PROD, reference_exists=None, today=date(2026, 1, 1))

    assert [f.code for f in findings] == ["CFG003"]


# --- payload files stay in the policy's folder ---------------------------------------------------


def smoke_policy(payload_file: str) -> Policy:
    return Policy(
        stage=Stage.PROD,
        functions={"orders": FunctionPolicy(smoke=[SmokeCase(name="q", payload_file=payload_file)])},
    )


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """policies/prod.yaml beside a JSON file outside its folder (a CI runner's secret, say)."""
    folder = tmp_path / "policies"
    (folder / "events").mkdir(parents=True)
    (folder / "events" / "quote.json").write_text('{"action": "quote"}')
    (tmp_path / "secret.json").write_text('{"token": "s3cr3t"}')
    (folder / "events" / "link.json").symlink_to(tmp_path / "secret.json")
    return folder


@pytest.mark.parametrize(
    "name, problem",
    [
        ("ABSOLUTE", "is an absolute path"),
        ("../secret.json", "outside the policy file's folder"),
        ("events/../../secret.json", "outside the policy file's folder"),
        ("events/link.json", "outside the policy file's folder"),
    ],
    ids=["absolute", "dot-dot", "dot-dot inside a path", "symlink"],
)
def test_a_payload_file_outside_the_policy_folder_is_a_policy_error(
    layout: Path, name: str, problem: str
) -> None:
    name = str(layout.parent / "secret.json") if name == "ABSOLUTE" else name

    with pytest.raises(InvalidPolicyError) as caught:
        inline_payloads(smoke_policy(name), layout, source="policies/prod.yaml")

    (issue,) = caught.value.issues
    assert issue.path == "functions.orders.smoke[0].payload_file"
    assert problem in issue.problem
    assert "policy file's folder" in issue.fix
    assert "s3cr3t" not in str(caught.value)


def test_payload_files_in_the_folder_or_below_are_inlined(layout: Path) -> None:
    for name in ("events/quote.json", "events/../events/quote.json"):
        inlined = inline_payloads(smoke_policy(name), layout)
        assert inlined.functions["orders"].smoke[0].payload == {"action": "quote"}


def test_policy_check_reports_a_payload_file_outside_the_folder_as_a_finding(
    layout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = layout / "prod.yaml"
    path.write_text(HEAD + "functions: {orders: {smoke: [{name: q, payload_file: ../secret.json}]}}\n")

    code, out = check(path, capsys)

    assert code == EXIT_FINDINGS
    assert "functions.orders.smoke[0].payload_file: '../secret.json' leads to" in out
    assert "s3cr3t" not in out


def test_a_payload_file_over_a_limit_is_a_policy_error(layout: Path) -> None:
    (layout / "events" / "deep.json").write_text("[" * 100 + "]" * 100)

    with pytest.raises(InvalidPolicyError) as caught:
        inline_payloads(smoke_policy("events/deep.json"), layout)

    assert "MAX_DEPTH" in caught.value.issues[0].problem


def test_payloads_that_inline_past_a_limit_are_refused_before_publishing(layout: Path) -> None:
    # each file is within the limits; together they are not, and the hook would refuse the result
    (layout / "events" / "wide.json").write_text(json.dumps(list(range(MAX_NODES // 3))))
    policy = Policy(
        stage=Stage.PROD,
        functions={
            "orders": FunctionPolicy(
                smoke=[SmokeCase(name=f"q{i}", payload_file="events/wide.json") for i in range(4)]
            )
        },
    )

    with pytest.raises(InvalidPolicyError, match=r"with its payload files inlined, .*MAX_NODES"):
        inline_payloads(policy, layout)
