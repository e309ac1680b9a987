"""``deployguard init`` and ``deployguard lint`` on three public SAM applications (tests/fixtures/sam_apps,
vendored unchanged with their licences) and on small templates that isolate one rule each."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployguard_cli.main import main
from deployguard_cli.template_lint import (
    HOOK_EXPORT_SUFFIXES,
    HOOK_FUNCTION_PREFIX,
    HOOK_FUNCTION_SUFFIXES,
    RULES,
    LintFinding,
    lint,
)
from deployguard_cli.templates import TemplateError, parse_template, read_template
from tests.tools.transform import load_template

ROOT = Path(__file__).resolve().parents[2]
APPS = ROOT / "tests" / "fixtures" / "sam_apps"
SAFE = APPS / "aws-safe-lambda-deployments" / "template.yaml"
SESSIONS = APPS / "sessions-with-aws-sam-safe-deploy" / "template.yaml"
VERSENT = APPS / "versent-demo-lambda-safe-deployments" / "deploy.sam.yaml"
TODAY = date(2026, 12, 2)


def codes(findings: list[LintFinding]) -> list[tuple[str, str]]:
    return [(f.code, f.resource) for f in findings]


def template_of(text: str, tmp_path: Path | None = None) -> Any:
    return parse_template(textwrap.dedent(text), (tmp_path or Path("/app")) / "template.yaml")


# A function DeployGuard guards as the attach guide wires it; each test changes one thing.
ATTACHED = """\
    Transform: AWS::Serverless-2016-10-31
    Parameters:
      Stage: {Type: String}
      DbHost: {Type: String}
    Globals:
      Function:
        Tags: {deployguard:stage: prod, deployguard:app: payments}
    Resources:
      Api:
        Type: AWS::Serverless::Function
        Properties:
          FunctionName: payments-api
          Runtime: python3.12
          Handler: app.handler
          AutoPublishAlias: live
          AutoPublishAliasAllProperties: true
          Environment:
            Variables:
              REGION: !Ref AWS::Region
              TABLE: !Ref Table
              MODE: fixed
          DeploymentPreference:
            Type: Canary10Percent5Minutes
            Alarms: [!Ref NewVersionErrors]
            Hooks:
              PreTraffic: !ImportValue deployguard-prod-PreTrafficHookName
              PostTraffic: !ImportValue
                Fn::Sub: deployguard-${Stage}-PostTrafficHookName
      Table:
        Type: AWS::DynamoDB::Table
      NewVersionErrors:
        Type: AWS::CloudWatch::Alarm
        Properties:
          AlarmName: payments-api-new-version-errors
          Dimensions:
            - {Name: FunctionName, Value: !Ref Api}
            - {Name: ExecutedVersion, Value: !GetAtt Api.Version.Version}
"""


# --- lint on the public apps -----------------------------------------------------------------------


def test_the_aws_sample_keeps_its_own_pre_traffic_hook_and_lacks_tags() -> None:
    findings = lint(read_template(SAFE), today=TODAY)

    # its hook function (DeploymentPreference.Enabled: false) is not linted as a guarded function
    assert {f.resource for f in findings} == {"returnS3Buckets"}
    assert {c for c, _ in codes(findings)} >= {"LNT005", "LNT004", "LNT007", "LNT009", "LNT011", "LNT012"}
    (collision,) = [f for f in findings if f.code == "LNT005"]
    assert "preTrafficHook" in collision.message and "one hook per lifecycle event" in collision.message
    assert collision.line == 8 and collision.level == "error"


def test_the_sessions_app_collides_on_both_hooks_and_runs_a_deprecated_runtime_from_globals() -> None:
    template = read_template(SESSIONS)  # ClientDomains has no default: no value is needed
    findings = lint(template, today=TODAY)

    collisions = [f for f in findings if f.code == "LNT005"]
    assert ["Hooks.PreTraffic" in collisions[0].message, "Hooks.PostTraffic" in collisions[1].message] == [
        True,
        True,
    ]
    (runtime,) = [f for f in findings if f.code == "LNT013"]
    assert "nodejs16.x" in runtime.message  # Globals.Function.Runtime, merged
    assert {f.resource for f in findings} == {"BaseFunction"}


def test_the_versent_app_has_one_alias_alarm_and_one_version_alarm_and_intrinsic_settings() -> None:
    findings = lint(read_template(VERSENT), today=TODAY)

    # AutoPublishAlias: !Ref FunctionAlias and Type: !If [...] are wiring, not findings
    assert {"LNT001", "LNT016"}.isdisjoint({f.code for f in findings})
    alarm_findings = [f.resource for f in findings if f.code == "LNT008"]
    assert alarm_findings == ["AliasErrorMetricGreaterThanZeroAlarm"]  # not the ExecutedVersion one
    assert ("LNT005", "Function") in codes(findings)


@pytest.mark.parametrize("path", [SAFE, VERSENT], ids=["aws-safe", "versent"])
def test_nodejs_6_10_is_a_deprecated_runtime(path: Path) -> None:
    findings = lint(read_template(path), today=TODAY)

    assert any(f.code == "LNT013" and "nodejs6.10" in f.message for f in findings)


@pytest.mark.parametrize("path", [SAFE, SESSIONS, VERSENT], ids=["aws-safe", "sessions", "versent"])
def test_lint_exits_1_on_each_public_app_and_explains_each_finding(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lint", str(path), "--json"]) == 1

    report = json.loads(capsys.readouterr().out)
    assert report["errors"] >= 1
    assert all(f["fix"] and f["code"] in RULES for f in report["findings"])


# --- lint: one rule at a time ----------------------------------------------------------------------


def test_the_attached_template_is_clean() -> None:
    assert lint(template_of(ATTACHED), today=TODAY, stage="prod", app="payments") == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("      AutoPublishAlias: live\n", ""), ("LNT001", "error")),
        (("AutoPublishAlias: live", "AutoPublishAlias: !Sub '${Stage}-live'"), ("LNT016", "error")),
        (("AutoPublishAlias: live", "AutoPublishAlias: '7'"), ("LNT016", "error")),
        (
            ("PreTraffic: !ImportValue deployguard-prod-PreTrafficHookName", "PreTraffic: !Ref Table"),
            ("LNT005", "error"),
        ),
        (
            ("PreTraffic: !ImportValue deployguard-prod-PreTrafficHookName", "PreTraffic: other-hook"),
            ("LNT005", "error"),
        ),
        (
            ("deployguard-prod-PreTrafficHookName", "deployguard-prod-PostTrafficHookName"),
            ("LNT006", "error"),
        ),
        (("Alarms: [!Ref NewVersionErrors]", "Alarms: []"), ("LNT007", "warning")),
        (("- {Name: ExecutedVersion, Value: !GetAtt Api.Version.Version}", ""), ("LNT008", "warning")),
        (
            ("AutoPublishAliasAllProperties: true", "AutoPublishAliasAllProperties: false"),
            ("LNT009", "warning"),
        ),
        (("MODE: fixed", "MODE: !Sub 'db-${DbHost}'"), ("LNT010", "warning")),
        (("deployguard:stage: prod, ", ""), ("LNT011", "error")),
        (("deployguard-prod-PreTrafficHookName", "deployguard-dev-PreTrafficHookName"), ("LNT017", "error")),
        (("deployguard:stage: prod", "deployguard:stage: dev"), ("LNT011", "error")),
        ((", deployguard:app: payments", ""), ("LNT012", "error")),
        (("Runtime: python3.12", "Runtime: python3.8"), ("LNT013", "error")),
        (("MODE: fixed", "DB_PASSWORD: hunter2-in-the-template"), ("LNT018", "error")),
        (("MODE: fixed", "TOKEN_VALUE: ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"), ("LNT018", "error")),
        (
            ("Alarms: [!Ref NewVersionErrors]", "Alarms: [" + ", ".join(f"a{i}" for i in range(11)) + "]"),
            ("LNT014", "error"),
        ),
        (
            ("PreTraffic: !ImportValue deployguard-prod-PreTrafficHookName", "PreTraffic: !Ref Stage"),
            ("LNT015", "warning"),
        ),
    ],
    ids=lambda v: v[0] if isinstance(v[0], str) and v[0].startswith("LNT") else None,
)
def test_each_rule_finds_its_mistake(change: tuple[str, str], expected: tuple[str, str]) -> None:
    old, new = change
    assert old in textwrap.dedent(ATTACHED)
    template = template_of(textwrap.dedent(ATTACHED).replace(old, new))

    findings = lint(template, today=TODAY, stage="prod", app="payments")

    assert [(f.code, f.level) for f in findings] == [expected]


def test_a_template_without_deployment_preference_guards_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    template = template_of(
        """\
        Resources:
          Fn: {Type: AWS::Serverless::Function, Properties: {Runtime: python3.12, AutoPublishAlias: live}}
        """
    )

    assert codes(lint(template, today=TODAY)) == [("LNT002", "template.yaml")]


def test_only_template_parameters_make_an_environment_parameter_driven() -> None:
    template = template_of(
        textwrap.dedent(ATTACHED).replace(
            "MODE: fixed",
            "MODE: !If [IsProd, a, b]\n"
            "          ARN: !Sub ['${T}-x', {T: !GetAtt Table.Arn}]\n"
            "          LITERAL: !Sub 'x-${!DbHost}'",
        )
        + "Conditions:\n  IsProd: !Equals [!Ref Stage, prod]\n"
    )

    (finding,) = lint(template, today=TODAY)

    # MODE depends on Stage through the condition; REGION (pseudo parameter), TABLE and ARN
    # (resources) and the escaped ${!DbHost} do not
    assert finding.code == "LNT010"
    assert "MODE (from Stage)" in finding.message
    assert (
        "REGION" not in finding.message and "ARN" not in finding.message and "LITERAL" not in finding.message
    )


def test_hooks_named_by_function_name_or_arn_count_as_deployguards() -> None:
    text = textwrap.dedent(ATTACHED).replace(
        "!ImportValue deployguard-prod-PreTrafficHookName",
        "!Sub 'arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:"
        "CodeDeployHook_deployguard-prod-pre-traffic'",
    )

    assert lint(template_of(text), today=TODAY) == []


def test_the_hook_names_lint_recognises_are_the_ones_deployguards_stack_exports() -> None:
    outputs = load_template()["Outputs"]
    exported = {o["Export"]["Name"]["Fn::Sub"] for o in outputs.values() if "Export" in o}
    for suffixes in HOOK_EXPORT_SUFFIXES.values():
        assert {f"${{AWS::StackName}}{suffix}" for suffix in suffixes} <= exported
    resources = load_template()["Resources"]
    names = {
        r["Properties"]["FunctionName"]["Fn::Sub"]
        for r in resources.values()
        if r["Type"] == "AWS::Serverless::Function" and "FunctionName" in r["Properties"]
    }
    for suffix in HOOK_FUNCTION_SUFFIXES.values():
        assert f"{HOOK_FUNCTION_PREFIX}${{Stage}}{suffix}" in names


def test_every_lint_code_is_documented_with_its_level() -> None:
    documented = dict(
        re.findall(r"^\| (LNT\d{3}) \| (error|warning) \|", (ROOT / "docs" / "lint.md").read_text(), re.M)
    )
    assert set(documented) == set(RULES)


def test_an_unreadable_template_exits_2_naming_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "template.yaml"
    broken.write_text("Resources: [\n")

    assert main(["lint", str(broken)]) == 2
    assert "is not a CloudFormation template" in capsys.readouterr().err
    assert main(["lint", str(tmp_path / "missing.yaml")]) == 2
    with pytest.raises(TemplateError, match="has no Resources"):
        template_of("AWSTemplateFormatVersion: '2010-09-09'\n")


def test_json_templates_are_read_too(tmp_path: Path) -> None:
    path = tmp_path / "template.json"
    path.write_text(json.dumps(load_template(SESSIONS), default=str))

    assert codes(lint(read_template(path), today=TODAY)) == codes(lint(read_template(SESSIONS), today=TODAY))


# --- init ----------------------------------------------------------------------------------------


def run_init(template: Path, out: Path, *args: str) -> dict[str, Any]:
    assert main(["init", str(template), "--out", str(out), *args]) == 0
    assert main(["policy", "check", str(out)]) == 0
    document: dict[str, Any] = yaml.safe_load(out.read_text())
    return document


@pytest.mark.parametrize(
    ("path", "key", "match"),
    [
        (SAFE, "returnS3Buckets", "*-returnS3Buckets-*"),
        (SESSIONS, "BaseFunction", "*-BaseFunction-*"),
        (VERSENT, "Function", "*-*-*-lambda-deployment-preferences"),
    ],
    ids=["aws-safe", "sessions", "versent"],
)
def test_init_writes_a_valid_policy_for_each_public_app_without_its_hook_functions(
    path: Path, key: str, match: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = run_init(path, tmp_path / "policy.yaml", "--stage", "prod", "--app", "shop")

    assert (document["stage"], document["application"]) == ("prod", "shop")
    assert list(document["functions"]) == [key]
    entry = document["functions"][key]
    assert entry["match"] == match
    assert entry["config"] == {"stage_variable": None, "required": [], "plaintext_secrets": "error"}
    assert "smoke" not in entry
    out = capsys.readouterr().out
    assert "no events/*.json" in out
    assert f"deployguard policy publish --stage prod --app shop {tmp_path / 'policy.yaml'}" in out
    assert "# No smoke case was written" in (tmp_path / "policy.yaml").read_text()


def test_init_names_the_alarms_it_cannot_select_and_skips_none_silently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_init(VERSENT, tmp_path / "policy.yaml")

    out = capsys.readouterr().out
    assert "alarm AliasErrorMetricGreaterThanZeroAlarm has no fixed AlarmName" in out
    assert "alarm LatestVersionErrorMetricGreaterThanZeroAlarm has no fixed AlarmName" in out


def test_init_turns_the_apps_events_into_smoke_cases(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(SAFE.parent, app)
    (app / "events").mkdir()
    shutil.move(app / "s3.json", app / "events" / "s3.json")

    document = run_init(app / "template.yaml", app / "deployguard-dev.yaml")

    assert document["functions"]["returnS3Buckets"]["smoke"] == [
        {"name": "s3", "payload_file": "events/s3.json"}
    ]


def test_init_requires_the_variables_and_flags_secret_names_without_printing_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        textwrap.dedent(ATTACHED).replace(
            "MODE: fixed",
            "MODE: fixed\n          DB_PASSWORD: hunter2-in-the-template\n"
            "          API_KEY_PARAM: /payments/api-key\n          EMPTY: ''",
        )
    )

    document = run_init(template, tmp_path / "policy.yaml")  # the app: the functions' deployguard:app tag

    assert document["application"] == "payments"
    entry = document["functions"]["payments-api"]
    assert "match" not in entry
    assert entry["config"]["required"] == ["API_KEY_PARAM", "DB_PASSWORD", "MODE", "REGION", "TABLE"]
    assert entry["alarms"] == {"select": {"names": ["payments-api-new-version-errors"]}}
    out = capsys.readouterr().out
    assert "DB_PASSWORD is named like a secret but holds a literal" in out
    assert "hunter2" not in out and "hunter2" not in (tmp_path / "policy.yaml").read_text()


def test_init_writes_nothing_for_a_template_without_deployments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        "Resources:\n  Fn: {Type: AWS::Serverless::Function, Properties: {Runtime: python3.12}}\n"
    )

    assert main(["init", str(template)]) == 1
    assert not (tmp_path / "deployguard-dev.yaml").exists()
    assert "nothing to guard" in capsys.readouterr().out


def test_init_never_overwrites_without_force_and_refuses_a_bad_app_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "policy.yaml"
    out.write_text("mine")

    assert main(["init", str(SAFE), "--out", str(out)]) == 2
    assert out.read_text() == "mine"
    assert main(["init", str(SAFE), "--out", str(out), "--force"]) == 0
    assert main(["init", str(SAFE), "--out", str(tmp_path / "x.yaml"), "--app", "Bad App"]) == 2
    assert "is not an application name" in capsys.readouterr().err


# --- the attach guide ----------------------------------------------------------------------------

GUIDE = ROOT / "docs" / "attach-in-10-minutes.md"


def test_the_guides_attached_template_lints_clean(tmp_path: Path) -> None:
    (block,) = [
        b for b in re.findall(r"```yaml\n(.*?)```", GUIDE.read_text(), re.S) if b.startswith("# attached:")
    ]
    path = tmp_path / "template.yaml"
    path.write_text(block)

    assert lint(read_template(path), today=TODAY, stage="staging", app="buckets") == []


def test_the_guides_lint_output_is_what_lint_says_of_the_sample() -> None:
    shown = re.findall(r"^template\.yaml:(\d+): (LNT\d{3}) (error|warning) (\w+):", GUIDE.read_text(), re.M)
    found = {(str(f.line), f.code, f.level, f.resource) for f in lint(read_template(SAFE), today=TODAY)}

    assert shown
    assert set(shown) <= found


def test_plain_cloudformation_wiring_is_named_not_failed(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(
        (ROOT / "docs" / "attach.md").read_text().split("# snippet: cloudformation\n")[1].split("```")[0]
    )

    (finding,) = lint(read_template(path), today=TODAY)

    assert (finding.code, finding.level) == ("LNT002", "warning")


def test_lint_names_a_plaintext_secret_without_printing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(ATTACHED).replace("MODE: fixed", f"GITHUB_TOKEN: {token}"))

    assert main(["lint", str(path), "--json"]) == 1

    out = capsys.readouterr().out
    assert "GITHUB_TOKEN" in out
    assert token[:8] not in out and token[-8:] not in out
