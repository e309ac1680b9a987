"""Rehearse the user's own application: its template, its code, its policy, its alarms.

``deployguard rehearse --template PATH`` reads the user's SAM template (CodeUri, Handler, Runtime,
Environment with Globals, Layers of the template's own, parameters from ``samconfig.toml`` and
``--parameter-overrides``, Conditions), deploys the "from" tree (default: the last commit) as the
live version and the "to" tree (default: the working tree) as the new one on the embedded AWS, next
to DeployGuard's own functions as its template deploys them, and plays the guarded deployment:
the user's ``DeploymentPreference`` type and alarms, its hooks replaced by DeployGuard's, the
stage's baseline with the user's application policy published through ``policy publish``'s own
code, and traffic built from the policy's smoke payloads and ``events/*.json``.

``--faults`` then plays the same release once per fault (:data:`FAULTS`), injected into the new
version. Each must end Failed or Stopped with the alias back on the live version; one that does
not is explained: which part of the guard would have caught it and what it lacks.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from deployguard.errors import DeployGuardError
from deployguard.policy import parse_document, read_policy_file
from deployguard.secrets import Redactor
from deployguard.stages import APP_TAG, STAGE_TAG, Stage
from deployguard_cli.localaws.faults import FAULTS, SLOW_DEFAULT_MS, Fault
from deployguard_cli.rehearsal.scenarios import SUCCEEDED, Expected, Scenario
from deployguard_cli.rehearsal.traffic import TrafficProfile
from deployguard_cli.rehearsal.wiring import (
    DEPLOY_TIME,
    IMPORTED,
    TARGET_VERSION,
    AlarmSpec,
    FunctionSpec,
    Resolver,
    TemplateError,
    Wiring,
    _alarm,
    _function,
    _globals,
    load_template,
    read_wiring,
)
from deployguard_cli.rehearsal.world import Release, World
from deployguard_cli.templates import merge_globals

if TYPE_CHECKING:
    from deployguard.outcome import OutcomeRecord
    from deployguard_cli.rehearsal.engine import DeploymentOutcome

__all__ = ["FAULTS", "AppRehearsal", "UserApp", "prepared"]

FAULT_MISTAKES = {
    "errors": "the new version raises on half of its requests",
    "slow": "the new version answers {delay} ms slower",
    "missing-env": "the new version lost its environment variable {variable}",
    "wrong-type": "the new version answers numbers as strings (a wrong type)",
}
SUPPORTED_RUNTIMES = ("python3.", "nodejs")
REQUESTS_PER_MINUTE = 20
"""Traffic on the alias while it shifts: with 10 % on the new version, 2 requests a minute reach it."""
_SUFFIX = "REHEARSAL"  # CloudFormation names a function <stack>-<logical id>-<suffix>


class RehearsalSetupError(DeployGuardError):
    code = "REHEARSAL"


# --- the two trees: what is live and what is new ----------------------------------------------------
@dataclass
class Tree:
    """One side of the release: a folder holding the template (a checkout of a commit, or a folder)."""

    label: str
    template: Path
    checkout: Path | None = None  # the folder a commit was extracted to (its code must be inside)

    def cleanup(self) -> None:
        if self.checkout is not None:
            shutil.rmtree(self.checkout, ignore_errors=True)


def tree_of(spec: str | None, template: Path, *, default_head: bool) -> Tree:
    """The tree ``spec`` names: a folder (its copy of the template's file name), a git ref, or by
    default the last commit (``default_head``) or the working tree. ``default_head`` is the
    ``--from`` side (a commit or a folder); the other is ``--to`` (a folder only)."""
    template = template.resolve()
    flag = "--from" if default_head else "--to"
    if spec is None and not default_head:
        return Tree(label="the working tree", template=template)
    if spec is not None and Path(spec).is_dir():
        candidate = Path(spec).resolve() / template.name
        if not candidate.is_file():
            raise RehearsalSetupError(
                f"{flag} {spec}: it holds no {template.name}: pass the folder that holds the template"
            )
        return Tree(label=f"folder {spec}", template=candidate)
    if not default_head:
        raise RehearsalSetupError(
            f"--to {spec}: no such folder: pass the folder that holds the new {template.name}"
        )
    return _checkout(spec or "HEAD", template, quiet_fallback=spec is None)


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, check=False)  # noqa: S603, S607


def _checkout(ref: str, template: Path, *, quiet_fallback: bool) -> Tree:
    if ref.startswith("-"):  # NOTE: git would read it as an option (e.g. archive's --output)
        raise RehearsalSetupError(f"--from {ref}: not a commit; name a branch, tag or commit")
    top = _git(template.parent, "rev-parse", "--show-toplevel") if shutil.which("git") else None
    if top is None or top.returncode != 0:
        if quiet_fallback:  # no history: the live version is the working tree itself
            return Tree(label="the working tree (not in a git repository)", template=template)
        raise RehearsalSetupError(f"--from {ref}: {template.parent} is not in a git repository")
    root = Path(top.stdout.decode().strip())
    relative = template.relative_to(root)
    commit = _git(root, "rev-parse", "--short", f"{ref}^{{commit}}")
    if commit.returncode != 0:
        if quiet_fallback:
            return Tree(label="the working tree (no commit yet)", template=template)
        raise RehearsalSetupError(f"--from {ref}: not a commit of {root} ({commit.stderr.decode().strip()})")
    # NOTE: the whole commit, not the template's folder: its CodeUri may be ../src (infra/template.yaml)
    archive = _git(root, "archive", "--format=tar", ref)
    if archive.returncode != 0:
        raise RehearsalSetupError(f"--from {ref}: git archive failed: {archive.stderr.decode().strip()}")
    folder = Path(tempfile.mkdtemp(prefix="deployguard-from-"))
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    checked_out = folder / relative
    if not checked_out.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        raise RehearsalSetupError(f"--from {ref}: {relative} is not in that commit; pass --from DIR")
    sha = commit.stdout.decode().strip()
    return Tree(
        label=f"{ref} ({sha})" if ref != sha else sha,
        template=checked_out,
        checkout=folder,
    )


# --- the user's template ----------------------------------------------------------------------------
def samconfig(folder: Path, config_env: str = "default") -> tuple[dict[str, str], str | None]:
    """``samconfig.toml``'s deploy parameter overrides and stack name for ``config_env``."""
    path = folder / "samconfig.toml"
    if not path.is_file():
        return {}, None
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RehearsalSetupError(f"cannot read {path}: {exc}") from exc
    settings = ((document.get(config_env) or {}).get("deploy") or {}).get("parameters") or {}
    overrides = settings.get("parameter_overrides") or []
    items = shlex.split(overrides) if isinstance(overrides, str) else [str(o) for o in overrides]
    return parse_overrides(items, source=f"{path} parameter_overrides"), settings.get("stack_name")


def parse_overrides(items: Sequence[str], *, source: str = "--parameter-overrides") -> dict[str, str]:
    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RehearsalSetupError(f"{source}: {item!r} is not KEY=VALUE")
        values[key.removeprefix("ParameterKey=")] = value.removeprefix("ParameterValue=")
    return values


@dataclass(frozen=True)
class UserApp:
    """The guarded function as the "to" tree deploys it, and what the rehearsal made of its template."""

    function: FunctionSpec
    alias: str
    deployment_type: str
    alarms: tuple[AlarmSpec, ...]
    notes: tuple[str, ...]  # what the rehearsal changed or could not take from the template
    skipped: tuple[str, ...]  # functions whose DeploymentPreference is disabled

    def release(self, label: str) -> Release:
        return Release(label=label, code_dir=self.function.code_uri, environment=self.function.environment)


def _chosen(resolver: Resolver, value: Any) -> Any:
    """``value`` with its ``Fn::If`` picked (its inner ``Ref``s left as written); None for
    ``AWS::NoValue``."""
    while isinstance(value, Mapping) and len(value) == 1 and "Fn::If" in value:
        name, when_true, when_false = value["Fn::If"]
        value = when_true if resolver.condition(str(name)) else when_false
    return None if value == {"Ref": "AWS::NoValue"} else value


def _preference(resolver: Resolver, resource: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The function's ``DeploymentPreference``, merged over ``Globals.Function``'s as SAM does."""
    properties = resource.get("Properties")
    own = (
        _chosen(resolver, properties.get("DeploymentPreference")) if isinstance(properties, Mapping) else None
    )
    shared = _chosen(resolver, _globals(resolver.template).get("DeploymentPreference"))
    preference = shared if own is None else merge_globals(shared, own)
    return preference if isinstance(preference, Mapping) else None


def _enabled(resolver: Resolver, resource: Mapping[str, Any], preference: Mapping[str, Any]) -> bool:
    condition = resource.get("Condition")
    if isinstance(condition, str) and not resolver.condition(condition):
        return False
    enabled = resolver.resolve(preference.get("Enabled", True))
    return str(enabled).lower() not in ("false", "0")


@contextlib.contextmanager
def _readable(template_path: Path) -> Iterator[None]:
    """A template the rehearsal cannot read as a TemplateError naming it, not a traceback."""
    try:
        yield
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError) as exc:
        # NOTE: a template CloudFormation would refuse (an intrinsic's arguments, a list for a map …)
        raise TemplateError(
            f"{template_path} is not a template the rehearsal can read ({type(exc).__name__}: {exc}): "
            "fix it (`sam validate --lint` says where)"
        ) from exc


def read_user_app(
    template_path: Path,
    *,
    function: str | None,
    parameters: Mapping[str, str],
    stack_name: str,
    stage: str,
    application: str,
    within: Path | None = None,
) -> UserApp:
    """The function to rehearse in ``template_path`` (``function``: its logical id or name, when
    the template guards several) and how its deployment is wired; ``within``: the checkout of a
    commit, which its code must be in."""
    with _readable(template_path):
        template = load_template(template_path)
        resolver = Resolver(
            template, parameters=parameters, stack_name=stack_name, suffix=f"-{_SUFFIX}", placeholders=True
        )
        logical, preference, skipped = _choose(resolver, template_path, function)
        resolver.attributes[f"{logical}.Version.Version"] = TARGET_VERSION
        spec = _function(resolver, logical, template_path.parent.resolve())
        if within is not None and not spec.code_uri.is_relative_to(within):
            raise RehearsalSetupError(
                f"{logical}'s CodeUri is outside the repository, so the commit does not hold its code: "
                "pass --from DIR (a folder with the live template)"
            )
        notes: list[str] = []
        if not spec.runtime.startswith(SUPPORTED_RUNTIMES):
            raise RehearsalSetupError(
                f"{logical}'s runtime {spec.runtime} cannot be rehearsed here: the embedded AWS runs python3.x "
                "(the versions on this machine) and nodejs* functions only"
            )
        built = template_path.parent / ".aws-sam" / "build" / logical
        if built.is_dir():
            spec = replace(spec, code_uri=built.resolve())
            notes.append(f"{logical}: code from {built} (what `sam build` made, as `sam deploy` ships it)")
        if not spec.code_uri.exists():
            raise RehearsalSetupError(
                f"{logical}'s CodeUri {spec.code_uri} does not exist: build it first (e.g. `sam build`) or pass --to DIR"
            )
        if not built.is_dir():
            spec = _with_requirements(spec, notes)
        _provide_node_sdk(spec, notes)
        tags = dict(spec.tags)
        for tag, value in ((STAGE_TAG, stage), (APP_TAG, application)):
            if tags.get(tag) != value:
                notes.append(
                    f"{logical}: tagged {tag}={value} (the guide's step; the template says {tags.get(tag)!r})"
                )
                tags[tag] = value
        notes += [
            f"{logical}: layer {layer} is not the template's own: not on the embedded AWS"
            for layer in spec.external_layers
        ]
        from_ssm = [
            name
            for name, declared in (template.get("Parameters") or {}).items()
            if str((declared or {}).get("Type", "")).startswith("AWS::SSM::Parameter::Value<")
        ]
        if from_ssm:  # NOTE: CloudFormation reads these from Parameter Store at deploy time; no store here
            notes.append(
                f"parameters {', '.join(from_ssm)} are SSM parameter types: CloudFormation passes the value it reads "
                "from Parameter Store; here each is the text given (by default the parameter's name): pass "
                f"--parameter-overrides {from_ssm[0]}=VALUE with the value your code expects"
            )
        notes += [
            f"{logical}: {', '.join(placeholders)} {why}: set to a placeholder here"
            for prefix, why in (
                (IMPORTED, "come from Fn::ImportValue"),
                (DEPLOY_TIME, "name an attribute known only once deployed"),
            )
            if (placeholders := sorted(k for k, v in spec.environment.items() if v.startswith(prefix)))
        ]
        properties = resolver.resources[logical].get("Properties") or {}
        alias = resolver.resolve(
            properties.get("AutoPublishAlias", _globals(template).get("AutoPublishAlias"))
        )
        deployment_type = resolver.resolve(preference.get("Type"))
        if not alias or not deployment_type:  # NOTE: the SAM transform refuses both
            missing = "AutoPublishAlias" if not alias else "DeploymentPreference.Type"
            raise RehearsalSetupError(
                f"{template_path.name}: {logical} has a DeploymentPreference but no {missing}: SAM deploys it "
                "through CodeDeploy only with both (e.g. AutoPublishAlias: live, Type: Canary10Percent5Minutes)"
            )
        hooks = _chosen(resolver, preference.get("Hooks")) or {}
        if isinstance(hooks, Mapping) and hooks:
            notes.append(
                f"{logical}: its hooks ({', '.join(f'{k}: {_name(v)}' for k, v in hooks.items())}) are replaced by "
                "DeployGuard's pre- and post-traffic hooks"
            )
        return UserApp(
            function=replace(spec, tags=tags),
            alias=str(alias),
            deployment_type=str(deployment_type),
            alarms=tuple(_preference_alarms(resolver, logical, preference.get("Alarms"), notes)),
            notes=tuple(notes),
            skipped=skipped,
        )


def _with_requirements(spec: FunctionSpec, notes: list[str]) -> FunctionSpec:
    """A Python function with a ``requirements.txt`` gets them installed (a layer), as ``sam build``
    would have put them in its artefact."""
    requirements = spec.code_uri / "requirements.txt"
    if not spec.runtime.startswith("python3.") or not requirements.is_file():
        return spec
    from deployguard_cli.localaws import lambda_runner, python_deps  # noqa: PLC0415

    version = spec.runtime.removeprefix("python")
    python = lambda_runner.find_python(version)
    if python is None:
        raise RehearsalSetupError(
            f"{spec.logical_id}'s runtime {spec.runtime} needs Python {version}, which is not on this machine: "
            f"install it (e.g. `pyenv install {version}`) to rehearse this function"
        )
    layer = python_deps.install_requirements(requirements, python, version)
    notes.append(
        f"{spec.logical_id}: requirements.txt installed with Python {version} (as `sam build` would)"
    )
    return replace(spec, layers=(*spec.layers, layer))


def _provide_node_sdk(spec: FunctionSpec, notes: list[str]) -> None:
    """The AWS SDK a Node.js runtime ships, installed now (once per machine), not at the first
    invocation, where it would count against the smoke test's time."""
    if not spec.runtime.startswith("nodejs"):
        return
    from deployguard_cli.localaws import node_sdk  # noqa: PLC0415
    from deployguard_cli.localaws.lambda_runner import node_layer_dirs  # noqa: PLC0415

    provided = node_sdk.provide(
        spec.runtime,
        code_roots=[spec.code_uri, *spec.layers],
        module_dirs=[spec.code_uri / "node_modules", *node_layer_dirs(spec.runtime, list(spec.layers))],
    )
    notes += [f"{spec.logical_id}: {why}" for why in provided.missing.values()]


def _choose(
    resolver: Resolver, template_path: Path, function: str | None
) -> tuple[str, Mapping[str, Any], tuple[str, ...]]:
    """The guarded function's logical id and its ``DeploymentPreference``, and the functions skipped
    as their preference is disabled."""
    resources = resolver.resources
    preferences = {
        logical: preference
        for logical, resource in resources.items()
        if isinstance(resource, dict)
        and resource.get("Type") == "AWS::Serverless::Function"
        and (preference := _preference(resolver, resource))
    }
    guarded = [logical for logical, p in preferences.items() if _enabled(resolver, resources[logical], p)]
    skipped = tuple(logical for logical in preferences if logical not in guarded)
    chosen = [
        logical
        for logical in guarded
        if function is None
        or function
        in (logical, resolver.resolve((resources[logical].get("Properties") or {}).get("FunctionName")))
    ]
    if function is not None and not chosen:
        raise RehearsalSetupError(
            f"--function {function}: no function of {template_path.name} by that logical id or name has an "
            f"enabled DeploymentPreference (guarded: {', '.join(guarded) or 'none'})"
        )
    if not chosen:
        raise RehearsalSetupError(
            f"{template_path} has no function with an enabled DeploymentPreference (skipped as disabled: "
            f"{', '.join(skipped) or 'none'}): nothing is deployed through CodeDeploy, nothing to rehearse"
        )
    if len(chosen) > 1:
        raise RehearsalSetupError(
            f"{template_path.name} guards {len(chosen)} functions ({', '.join(chosen)}): name one with --function"
        )
    return chosen[0], preferences[chosen[0]], skipped


def _preference_alarms(
    resolver: Resolver, logical: str, raw_alarms: Any, notes: list[str]
) -> list[AlarmSpec]:
    alarms = []
    raw_alarms = _chosen(resolver, raw_alarms)
    if raw_alarms is not None and not isinstance(raw_alarms, list):  # e.g. !Ref of a list parameter
        raw_alarms = resolver.resolve(raw_alarms)
    for entry in raw_alarms if isinstance(raw_alarms, list) else [raw_alarms] if raw_alarms else []:
        entry = _chosen(resolver, entry)  # noqa: PLW2901
        if entry is None:
            continue
        alarm = entry.get("Ref") if isinstance(entry, Mapping) else None
        if isinstance(alarm, str) and alarm in resolver.resources:
            alarms.append(_alarm(resolver, alarm))
        else:
            notes.append(
                f"{logical}: alarm {resolver.resolve(entry)} is not declared in the template: not on the embedded AWS"
            )
    return alarms


def _name(value: object) -> str:
    if isinstance(value, Mapping) and len(value) == 1:
        ((_, arg),) = value.items()
        return str(arg)
    return str(value)


# --- the whole rehearsal ------------------------------------------------------------------------------
@dataclass
class AppRehearsal:
    """Everything one ``rehearse --template`` plays: the wiring, the live release, the scenarios."""

    wiring: Wiring
    app: UserApp
    live: Release
    scenarios: list[Scenario]
    policy_source: str
    publish_policy: Callable[[Any, str], None]
    from_tree: Tree
    to_tree: Tree
    notes: list[str]
    setup: Callable[[World], None]


@dataclass(frozen=True)
class Options:
    template: Path
    function: str | None = None
    from_spec: str | None = None
    to_dir: Path | None = None
    stage: str | None = None
    policy: Path | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    faults: tuple[str, ...] = ()
    app: str | None = None
    config_env: str = "default"
    slow_ms: int | None = None  # None: past the smoke cases' latency budget (SLOW_DEFAULT_MS without one)
    setup: str | None = None  # a command that prepares the embedded AWS (SSM parameters, tables …)


@contextlib.contextmanager
def prepared(options: Options, *, deployguard_root: Path) -> Iterator[AppRehearsal]:
    """Both trees, the policy and DeployGuard's own template read into one rehearsal plan, for the
    ``with`` block; the live commit's checkout is removed after it."""
    template = options.template.resolve()
    if not template.is_file():
        raise RehearsalSetupError(f"--template {options.template}: no such file")
    if options.slow_ms is not None and options.slow_ms <= 0:
        raise RehearsalSetupError(
            f"--slow-ms {options.slow_ms}: the added latency must be a positive number of ms"
        )
    unknown = [f for f in options.faults if f not in (*FAULTS, "all")]
    if unknown:
        raise RehearsalSetupError(
            f"--faults: unknown {', '.join(unknown)}; choose from {', '.join(FAULTS)} or all"
        )
    from_tree = tree_of(options.from_spec, template, default_head=True)
    try:
        to_tree = tree_of(str(options.to_dir) if options.to_dir else None, template, default_head=False)
        with tempfile.TemporaryDirectory(prefix="deployguard-policy-") as scratch:
            yield _prepare(options, template, from_tree, to_tree, deployguard_root, scratch=Path(scratch))
    finally:
        from_tree.cleanup()  # NOTE: the --to side is a folder of the user's, never a checkout


def _prepare(
    options: Options, template: Path, from_tree: Tree, to_tree: Tree, deployguard_root: Path, *, scratch: Path
) -> AppRehearsal:
    """The plan; ``scratch`` is a folder of the rehearsal's own for what it writes (a starter policy)."""
    from deployguard_cli.commands.init import default_app  # noqa: PLC0415 - cfn-lint is heavy
    from deployguard_cli.templates import read_template  # noqa: PLC0415

    sam_parameters, sam_stack = samconfig(template.parent, options.config_env)
    parameters = {**sam_parameters, **options.parameters}
    policy_path = options.policy
    policy_document = _read_policy(policy_path) if policy_path else {}
    stage = Stage(options.stage or policy_document.get("stage") or Stage.DEV.value).value
    default = template.parent / f"deployguard-{stage}.yaml"
    if policy_path is None and default.is_file():
        policy_path, policy_document = default, _read_policy(default)
    application = options.app or str(
        policy_document.get("application") or default_app(read_template(template))
    )
    read = functools.partial(
        read_user_app,
        function=options.function,
        parameters=parameters,
        stack_name=sam_stack or f"{application}-{stage}",
        stage=stage,
        application=application,
    )
    app = read(to_tree.template)
    try:
        live_app = read(from_tree.template, within=from_tree.checkout)
    except (RehearsalSetupError, TemplateError) as exc:
        raise RehearsalSetupError(f"the live version ({from_tree.label}): {exc}") from exc
    guard = read_wiring(deployguard_root / "template.yaml", stage=stage)
    wiring = replace(
        guard,
        function=app.function,
        alias=app.alias,
        deployment_type=app.deployment_type,
        alarms=app.alarms,
        functions={k: v for k, v in guard.functions.items() if k != guard.function.logical_id},
    )
    notes = list(app.notes)
    notes += [f"{logical}: its DeploymentPreference is disabled: not rehearsed" for logical in app.skipped]
    if policy_path is None:
        publish, source, smoke = _starter_policy(
            template, stage, application, deployguard_root, folder=scratch, notes=notes
        )
    else:
        publish, source, smoke = _user_policy(policy_path, stage, application, deployguard_root)
    payloads = [case["payload"] for case in smoke if isinstance(case.get("payload"), dict)] + _events(
        template.parent
    )
    budgets = [int(case["max_latency_ms"]) for case in smoke if isinstance(case.get("max_latency_ms"), int)]
    slow_ms = options.slow_ms or (max(budgets) + 1000 if budgets else SLOW_DEFAULT_MS)
    if not payloads:
        payloads = [{}]
        notes.append("no smoke payload and no events/*.json: traffic sends {}")
    live = live_app.release(f"live: {from_tree.label}")
    traffic = TrafficProfile(
        requests_per_minute=REQUESTS_PER_MINUTE,
        make_requests=lambda rng, count: [rng.choice(payloads) for _ in range(count)],
        seed=3,
    )
    target = app.release(f"new: {to_tree.label}")
    scenarios = [_healthy(target, traffic)]
    for name in FAULTS if "all" in options.faults else options.faults:
        if name == "missing-env" and not app.function.environment:
            notes.append(
                f"fault missing-env not played: {app.function.logical_id} has no environment variable to lose"
            )
            continue
        scenarios.append(_fault_scenario(name, target, traffic, app, slow_ms))
    return AppRehearsal(
        wiring=wiring,
        app=app,
        live=live,
        scenarios=scenarios,
        policy_source=source,
        publish_policy=publish,
        from_tree=from_tree,
        to_tree=to_tree,
        notes=notes,
        setup=_setup_command(
            options.setup, template.parent, (app.function.environment, live_app.function.environment)
        ),
    )


def _setup_command(
    command: str | None, folder: Path, environments: Sequence[Mapping[str, str]]
) -> Callable[[World], None]:
    """Runs ``command`` (the user's ``--setup``) in ``folder`` against each fresh embedded AWS:
    ``AWS_ENDPOINT_URL`` and fake credentials point the AWS CLI or any SDK at it. Its failure is
    told with the secrets of ``environments`` (both versions') redacted, in its output and in the
    command line itself (``aws ssm put-parameter --value …``)."""
    redact = Redactor()
    for environment in environments:
        redact = redact.merge(Redactor.for_environment(environment))

    def run(world: World) -> None:
        if command is None:
            return
        shown = redact(command)
        # NOTE: inside the world, os.environ already holds its fake credentials and no profile
        env = {**os.environ, "AWS_ENDPOINT_URL": str(world.functions_endpoint)}
        try:
            done = subprocess.run(  # noqa: S602 - the user's own command line, as they typed it
                command,
                shell=True,
                cwd=folder,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RehearsalSetupError(f"--setup {shown!r} did not finish within 300 s") from exc
        if done.returncode != 0:
            # NOTE: what the command printed may hold the function's secrets, or any other: redacted
            output = redact((done.stderr or done.stdout).strip())[-400:]
            raise RehearsalSetupError(f"--setup {shown!r} failed (exit {done.returncode}): {output}")

    return run


def _read_policy(path: Path) -> dict[str, Any]:
    document = parse_document(read_policy_file(path), str(path))  # within every policy reader's limits
    return document if isinstance(document, dict) else {}


def _user_policy(
    path: Path, stage: str, application: str, deployguard_root: Path
) -> tuple[Callable[[Any, str], None], str, list[dict[str, Any]]]:
    from deployguard_cli.commands.policy import read_application, read_baseline  # noqa: PLC0415

    baseline_path = deployguard_root / "policies" / stage / "baseline.yaml"
    baseline = read_baseline(baseline_path, stage=Stage(stage)) if baseline_path.is_file() else None
    document, _ = read_application(path, baseline, stage=Stage(stage), application=application)  # fails early
    return (
        _publisher(baseline_path, stage, application, path),
        f"{path} under {baseline_path.relative_to(deployguard_root) if baseline else 'the built-in defaults'}",
        _smoke_cases(document),
    )


def _starter_policy(
    template: Path, stage: str, application: str, deployguard_root: Path, *, folder: Path, notes: list[str]
) -> tuple[Callable[[Any, str], None], str, list[dict[str, Any]]]:
    """What ``deployguard init`` would write, kept in ``folder``, the rehearsal's own (its smoke
    payloads inlined: nothing is written beside the user's template)."""
    from deployguard_cli.starter_policy import starter_policy  # noqa: PLC0415
    from deployguard_cli.templates import read_template  # noqa: PLC0415

    starter = starter_policy(read_template(template), stage=stage, app=application, policy_folder=folder)
    path = folder / f"deployguard-{stage}.yaml"
    path.write_text(yaml.safe_dump(starter.document, sort_keys=False), encoding="utf-8")
    notes.append(
        f"no deployguard-{stage}.yaml beside the template and no --policy: the policy is what "
        f"`deployguard init --stage {stage}` writes (run it to keep and edit one)"
    )
    publish, _, smoke = _user_policy(path, stage, application, deployguard_root)
    return publish, "deployguard init's starting policy", smoke


def _publisher(baseline_path: Path, stage: str, application: str, path: Path) -> Callable[[Any, str], None]:
    """Publishes as ``deployguard policy publish`` does (the baseline, then the application)."""

    def publish(s3: Any, bucket: str) -> None:
        from deployguard.stages import baseline_key  # noqa: PLC0415
        from deployguard_cli.commands.policy import publish_application, publish_baseline  # noqa: PLC0415

        if baseline_path.is_file():
            with contextlib.redirect_stderr(io.StringIO()):
                publish_baseline(s3, bucket, Stage(stage), baseline_path)
        else:
            s3.put_object(
                Bucket=bucket,
                Key=baseline_key(Stage(stage)),
                Body=json.dumps({"version": 1, "stage": stage}).encode(),
            )
        publish_application(s3, bucket, Stage(stage), application, path)

    return publish


def _smoke_cases(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The application's smoke cases (payloads inlined), every function's."""
    return [
        case
        for entry in (document.get("functions") or {}).values()
        for case in (entry or {}).get("smoke") or []
        if isinstance(case, dict)
    ]


def _events(folder: Path) -> list[dict[str, Any]]:
    payloads = []
    for path in sorted((folder / "events").glob("*.json")):  # none when there is no such folder
        with contextlib.suppress(OSError, ValueError):
            payload = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(payload, dict):
                payloads.append(payload)
    return payloads


# --- scenarios: the release as it is, and with each fault ---------------------------------------------
def _healthy(target: Release, traffic: TrafficProfile) -> Scenario:
    return Scenario(
        name="release",
        title="Your release as it is",
        mistake="none injected: the new version as the working tree has it",
        release=target,
        expected=SUCCEEDED,
        traffic=traffic,
        explain=_explain_healthy,
    )


def _fault_scenario(
    name: str, target: Release, traffic: TrafficProfile, app: UserApp, slow_ms: int
) -> Scenario:
    fault: Fault | None = None
    release = target
    variable = min(app.function.environment, default=None)  # the first by name
    if name == "errors":
        fault = Fault("errors", share=0.5)
    elif name == "slow":
        fault = Fault("slow", delay_ms=slow_ms)
    elif name == "wrong-type":
        fault = Fault("wrong-type")
    elif variable is not None:
        release = replace(target, label=f"{target.label} without {variable}", unset=(variable,))
    mistake = FAULT_MISTAKES[name].format(delay=slow_ms, variable=variable)
    return Scenario(
        name=f"fault:{name}",
        title=f"Fault: {name}",
        mistake=mistake,
        release=release,
        expected=Expected(
            status=("Failed", "Stopped"),
            max_weight=None,
            alias_on="current",
            rolled_back=None,
            decided_by=None,
        ),
        traffic=traffic,
        fault=fault,
        explain=lambda outcome, _records: explain_fault(name, outcome, app, variable),
    )


def _explain_healthy(outcome: DeploymentOutcome, records: Sequence[OutcomeRecord]) -> list[str]:
    """The checks the release as it is failed, with their error findings."""
    from deployguard.outcome import check_code  # noqa: PLC0415

    messages = []
    for record in records:
        if record.decision is not None and record.decision.value == "Failed":
            for check in record.failed_checks:
                findings = [
                    f"{f.code} {f.subject}: {f.message}"
                    for f in check.findings
                    if f.severity.value == "error"
                ]
                messages.append(f"{check_code(check)}: {'; '.join(findings) or check.message}")
    return [f"your release as it is fails DeployGuard's checks: {'; '.join(messages)}"] if messages else []


def explain_fault(name: str, outcome: DeploymentOutcome, app: UserApp, variable: str | None) -> list[str]:
    """What is missing, when the fault ``name`` was not caught: the part of the guard that would
    have caught it and why it did not (a fault that was not caught left no failed record to read)."""
    if outcome.status == "Succeeded":
        missing = [f"fault {name} was NOT caught: the release Succeeded with it"]
    else:
        missing = [f"fault {name} ended {outcome.status} but the alias is not back on the live version"]
    if name in ("errors", "slow"):
        missing += _unfired_alarms("Errors" if name == "errors" else "Duration", outcome, app)
        missing.append(
            "no smoke case has max_latency_ms below the added delay (policy: smoke[].max_latency_ms)"
            if name == "slow"
            else "no smoke case reached a failing invocation (the fault fails every second invocation)"
        )
    elif name == "wrong-type":
        missing.append(
            "no smoke case asserts on the answer: add `expect: [{path: $.field, type: number}]` or `equals` "
            "(docs/policy.md)"
        )
    else:
        missing.append(
            f"the policy does not require {variable} (config.required) and drift.removed_variables is not error"
        )
    return missing


def _unfired_alarms(metric: str, outcome: DeploymentOutcome, app: UserApp) -> list[str]:
    """Why no alarm of the deployment group stopped the release."""
    watching = [a for a in app.alarms if a.request.get("MetricName") == metric or a.request.get("Metrics")]
    if not app.alarms:
        return [
            f"its DeploymentPreference has no Alarms: add one on {metric} of the new version "
            "(dimensions FunctionName, Resource function:alias, ExecutedVersion)"
        ]
    if not watching:
        return [f"no alarm of its DeploymentPreference watches {metric}"]
    missing = []
    for alarm in watching:
        state = outcome.alarm_states.get(alarm.name, "never evaluated")
        dimensions = {d.get("Name") for d in alarm.request.get("Dimensions") or []}
        if "ExecutedVersion" not in dimensions and "Resource" in dimensions:
            why = "it watches the alias, not the version: the new version's share is diluted by the live one"
        elif "ExecutedVersion" not in dimensions:
            why = "it watches the whole function, not the new version"
        else:
            why = f"its threshold {alarm.request.get('Threshold')} was not crossed"
        missing.append(f"alarm {alarm.name} never fired (ended {state}): {why}")
    return missing
