"""The dashboard body and the saved queries cannot drift from what the code emits and logs: metric
names and dimensions are read from observability.py's source, query fields from the record schema."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployguard import observability
from deployguard.observability import COMMON_DIMENSIONS, METRICS, NAMESPACE
from deployguard.schema import outcome_record_schema
from deployguard_cli.dashboard import (
    ALL_ROLLBACKS_THIS_WEEK_QUERY,
    DEPLOYMENT_ID_PLACEHOLDER,
    QUERIES,
    WHY_DID_DEPLOYMENT_FAIL_QUERY,
    dashboard_body,
    dashboard_json,
    why_did_deployment_fail,
)

ROOT = Path(__file__).resolve().parents[2]
SEARCH = re.compile(r"SEARCH\('\{(?P<schema>[^}]*)\} (?P<terms>[^']*)', '(?P<stat>\w+)', (?P<period>\d+)\)")


def source_metrics() -> tuple[set[str], set[str]]:
    """(keys of the METRICS literal, names passed to _emit) as written in observability.py."""
    tree = ast.parse(Path(observability.__file__).read_text())
    declared: set[str] = set()
    emitted: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == "METRICS"
        ):
            assert isinstance(node.value, ast.Dict)
            declared = {
                k.value for k in node.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)
            }
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_emit":
            first = node.args[0]
            assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
                "emit metrics by literal name"
            )
            emitted.add(first.value)
    return declared, emitted


def searches(body: dict[str, Any]) -> list[re.Match[str]]:
    found = []
    for widget in body["widgets"]:
        for row in widget["properties"].get("metrics", []):
            for item in row:
                found += list(SEARCH.finditer(item["expression"]))
    return found


def deployguard_searches(body: dict[str, Any]) -> dict[str, set[tuple[str, ...]]]:
    """metric name → the dimension sets the dashboard searches it with."""
    result: dict[str, set[tuple[str, ...]]] = {}
    for match in searches(body):
        namespace, *dimensions = match["schema"].split(",")
        if namespace != NAMESPACE:
            continue
        name = re.search(r'MetricName="([^"]+)"', match["terms"])
        assert name is not None
        result.setdefault(name[1], set()).add(tuple(sorted(dimensions)))
    return result


def test_the_body_is_json_with_only_region_placeholders() -> None:
    text = dashboard_json()
    body = json.loads(text)

    assert body["widgets"]
    assert set(re.findall(r"\$\{[^}]*\}", text)) == {"${AWS::Region}"}  # safe inside !Sub
    for widget in body["widgets"]:
        assert {"type", "x", "y", "width", "height", "properties"} <= set(widget)
        assert widget["properties"]["region"] == "${AWS::Region}"
        for row in widget["properties"].get("metrics", []):
            for item in row:
                assert re.fullmatch(r"[a-z][A-Za-z0-9_]*", item["id"])


def test_its_metric_names_are_exactly_those_in_the_source() -> None:
    declared, emitted = source_metrics()

    assert declared == emitted == set(METRICS)
    assert set(deployguard_searches(dashboard_body())) == declared


def test_each_search_uses_the_exact_dimension_set_the_code_emits() -> None:
    for name, dimension_sets in deployguard_searches(dashboard_body()).items():
        assert dimension_sets == {tuple(sorted([*METRICS[name][1], *COMMON_DIMENSIONS]))}, name


def test_per_version_errors_of_the_guarded_functions() -> None:
    body = dashboard_body(functions=["orders", "${PaymentsFunction}"], region="eu-west-1")

    lambda_searches = [m for m in searches(body) if m["schema"].startswith("AWS/Lambda,")]
    (errors,) = lambda_searches
    assert errors["schema"] == "AWS/Lambda,ExecutedVersion,FunctionName,Resource"
    assert 'MetricName="Errors"' in errors["terms"]
    assert '(FunctionName="orders" OR FunctionName="${PaymentsFunction}")' in errors["terms"]
    assert {w["properties"]["region"] for w in body["widgets"]} == {"eu-west-1"}


def test_the_widgets_the_issue_asks_for() -> None:
    titles = [
        w["properties"]["title"].lower() for w in dashboard_body(log_groups=["/aws/lambda/x"])["widgets"]
    ]

    for words in ("decisions", "failed checks", "rollbacks", "hook duration", "executed version", "outcomes"):
        assert any(words in title for title in titles), words


def test_the_log_widget_reads_the_named_groups() -> None:
    body = dashboard_body(log_groups=["/aws/lambda/${PreTrafficHook}", "/aws/lambda/b"])

    (log,) = [w for w in body["widgets"] if w["type"] == "log"]
    assert log["properties"]["query"].startswith(
        "SOURCE '/aws/lambda/${PreTrafficHook}' | SOURCE '/aws/lambda/b' | "
    )


# --- Logs Insights queries ----------------------------------------------------------------------


def query_fields(query: str) -> set[str]:
    """Every record field a query names (not @-fields, keywords, strings or numbers)."""
    text = re.sub(r'"[^"]*"', "", query)
    words = set(re.findall(r"(?<![@\w])[a-z_][a-z_0-9]*", text))
    keywords = {
        "fields",
        "filter",
        "sort",
        "limit",
        "and",
        "or",
        "not",
        "asc",
        "desc",
        "like",
        "in",
        "as",
        "message",
    }
    return words - keywords


@pytest.mark.parametrize("query", list(QUERIES.values()), ids=list(QUERIES))
def test_queries_name_only_record_fields(query: str) -> None:
    assert query_fields(query) <= set(outcome_record_schema()["properties"])
    assert 'record_type = "outcome"' in query


def test_the_two_saved_queries() -> None:
    assert DEPLOYMENT_ID_PLACEHOLDER in WHY_DID_DEPLOYMENT_FAIL_QUERY
    assert 'deployment_id = "d-ABCDEF123"' in why_did_deployment_fail("d-ABCDEF123")
    assert "sort @timestamp asc" in WHY_DID_DEPLOYMENT_FAIL_QUERY
    assert "rolled_back = 1" in ALL_ROLLBACKS_THIS_WEEK_QUERY  # JSON true is 1 in Logs Insights


def test_the_script_prints_the_body(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location(
        "render_dashboard", ROOT / "scripts" / "render_dashboard.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    assert script.main(["--compact", "--function", "orders"]) == 0
    assert json.loads(capsys.readouterr().out) == dashboard_body(functions=["orders"])
    assert script.main(["--queries"]) == 0
    assert json.loads(capsys.readouterr().out) == QUERIES


# --- the template, once it holds them -----------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Sub, !Ref, …) read as plain values."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    assert isinstance(node, yaml.MappingNode)
    return loader.construct_mapping(node, deep=True)


_CfnLoader.add_multi_constructor("!", _any_tag)


def template_resources(kind: str) -> list[dict[str, Any]]:
    path = ROOT / "template.yaml"
    if not path.exists():
        return []
    template = yaml.load(path.read_text(), Loader=_CfnLoader)  # a SafeLoader subclass
    return [r.get("Properties", {}) for r in template.get("Resources", {}).values() if r.get("Type") == kind]


def _text(value: Any) -> str:
    """The string inside !Sub / Fn::Sub (plain or [string, variables])."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        value = value["Fn::Sub"]
    if isinstance(value, list):
        value = value[0]
    assert isinstance(value, str)
    return value


def test_the_template_dashboard_is_the_generated_one() -> None:
    dashboards = template_resources("AWS::CloudWatch::Dashboard")
    if not dashboards:
        pytest.skip(
            "template.yaml has no AWS::CloudWatch::Dashboard yet (scripts/render_dashboard.py prints it)"
        )
    for dashboard in dashboards:
        body = json.loads(_text(dashboard["DashboardBody"]))
        assert deployguard_searches(body) == deployguard_searches(dashboard_body())


def test_the_template_queries_are_the_generated_ones() -> None:
    definitions = template_resources("AWS::Logs::QueryDefinition")
    if not definitions:
        pytest.skip("template.yaml has no AWS::Logs::QueryDefinition yet")
    strings = {_text(d["QueryString"]).strip() for d in definitions}
    assert {q.strip() for q in QUERIES.values()} <= strings
