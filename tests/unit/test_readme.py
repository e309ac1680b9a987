"""The README and docs/ are part of the product: their commands, policy examples and references stay true.

The copy-paste snippets of README.md and docs/attach.md are checked against the template in
tests/unit/test_template.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deployguard.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
POLICY_REFERENCE = ROOT / "docs" / "policy.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 300

# Top-level folders whose paths the docs name; a path under one of them must exist.
REPO_FOLDERS = (
    "layers",
    "cli",
    "docs",
    "scripts",
    "tests",
    "events",
    "policies",
    "functions",
    "statemachine",
)
REPO_PATH = re.compile(rf"(?<![\w./-])((?:{'|'.join(REPO_FOLDERS)}|\.github|\.ci)/[\w./<>*-]*)")
# A file named without its folder (`engine.py`, `aws/codedeploy.py`, `template.yaml`) in a code span.
FILE_NAME = re.compile(r"^[\w/-]+\.(?:py|json|yaml|yml|toml|sql|txt|md)$")
# Python packages the docs name in dotted form (`deployguard.aws.policy_store`), and where they live.
PACKAGES = {
    "deployguard": ROOT / "layers" / "deployguard" / "deployguard",
    "deployguard_cli": ROOT / "cli" / "deployguard_cli",
}
DOTTED = re.compile(r"^(deployguard(?:_cli)?(?:\.\w+)+)$")
INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def text(doc: Path) -> str:
    return doc.read_text()


def name(doc: Path) -> str:
    return str(doc.relative_to(ROOT))


def policy_blocks(doc: Path) -> list[str]:
    return [b for b in re.findall(r"```yaml\n(.*?)```", text(doc), re.DOTALL) if b.startswith("version: 1")]


POLICY_BLOCKS = [(name(doc), block) for doc in (README, POLICY_REFERENCE) for block in policy_blocks(doc)]


def test_the_first_lines_give_the_two_commands() -> None:
    head = text(README).splitlines()[:6]
    assert any(line.startswith("make rehearse") for line in head)
    assert any(line.startswith("make test") for line in head)


def test_the_readme_stays_short_enough_to_read_in_one_sitting() -> None:
    lines = len(text(README).splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move reference into docs/"


def test_the_readme_links_every_document_in_docs() -> None:
    linked = set(LINK.findall(text(README)))
    for doc in DOCS[1:]:
        assert name(doc) in linked, f"README.md does not link {name(doc)}"


def test_the_policy_reference_shows_a_complete_policy_for_every_stage() -> None:
    stages = {load_policy(block).stage.value for block in policy_blocks(POLICY_REFERENCE)}
    assert stages == {"dev", "staging", "prod"}


def test_the_readme_shows_a_policy() -> None:
    assert policy_blocks(README), "README.md: the policy in brief needs its example"


@pytest.mark.parametrize(("doc", "block"), POLICY_BLOCKS, ids=lambda v: v.split("\n")[1] if "\n" in v else v)
def test_every_policy_example_is_valid(doc: str, block: str) -> None:
    load_policy(block, doc)


# --- references -------------------------------------------------------------------------------------


def repo_paths(doc: Path) -> set[str]:
    """Every repo-relative path the document names (in prose, code spans and code blocks alike)."""
    return {match.rstrip(".,:;)") for match in REPO_PATH.findall(text(doc))}


def exists(path: str) -> bool:
    """A path, or a pattern with ``*`` or a ``<placeholder>`` that matches at least one path."""
    pattern = re.sub(r"<[^>]+>", "*", path).rstrip("/")
    if "*" in pattern:
        return any(ROOT.glob(pattern))
    return (ROOT / pattern).exists()


@pytest.mark.parametrize("doc", DOCS, ids=name)
def test_every_file_path_the_docs_name_exists(doc: Path) -> None:
    missing = sorted(path for path in repo_paths(doc) if not exists(path))
    assert not missing, f"{name(doc)} names paths that do not exist: {missing}"


def named_files(doc: Path) -> set[str]:
    prose = FENCE.sub("", text(doc))
    spans = {span.strip() for span in INLINE_CODE.findall(prose)}
    return {span for span in spans if FILE_NAME.match(span) and not REPO_PATH.match(span)}


def found_by_name(file: str) -> bool:
    """A file at the root, or under one of the repository's folders, ends with this name."""
    if (ROOT / file).exists():
        return True
    return any(any((ROOT / folder).glob(f"**/{file}")) for folder in REPO_FOLDERS)


@pytest.mark.parametrize("doc", DOCS, ids=name)
def test_every_file_the_docs_name_without_its_folder_exists(doc: Path) -> None:
    missing = sorted(file for file in named_files(doc) if not found_by_name(file))
    assert not missing, f"{name(doc)} names files that do not exist: {missing}"


def module_exists(dotted: str) -> bool:
    """``deployguard.aws.policy_store`` is a module or package; ``deployguard.observability.METRICS``
    is a name defined at the top of a module (read from the source: importing would pull in moto)."""
    package, *parts = dotted.split(".")
    folder = PACKAGES[package]
    for i, part in enumerate(parts):
        if (folder / part).is_dir():
            folder = folder / part
            continue
        module = folder / f"{part}.py"
        if not module.exists():
            return False
        rest = parts[i + 1 :]
        if not rest:
            return True
        defined = re.compile(rf"^(?:class|def)\s+{re.escape(rest[0])}\b|^{re.escape(rest[0])}\b\s*[:=]", re.M)
        return len(rest) <= 2 and bool(defined.search(module.read_text()))
    return True


@pytest.mark.parametrize("doc", DOCS, ids=name)
def test_every_module_the_docs_name_exists(doc: Path) -> None:
    prose = FENCE.sub("", text(doc))
    named = {m.group(1) for span in INLINE_CODE.findall(prose) if (m := DOTTED.match(span.strip()))}
    missing = sorted(dotted for dotted in named if not module_exists(dotted))
    assert not missing, f"{name(doc)} names modules that do not exist: {missing}"


def anchors(doc: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#{1,6} (.+)$", FENCE.sub("", text(doc)), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("doc", DOCS, ids=name)
def test_every_link_between_the_docs_resolves(doc: Path) -> None:
    broken = []
    for target in LINK.findall(FENCE.sub("", text(doc))):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert not broken, f"{name(doc)} links to what does not exist: {broken}"


def test_the_docs_cite_only_what_is_in_the_repository() -> None:
    for doc in DOCS:
        assert "DESIGN.md" not in text(doc), f"{name(doc)} cites DESIGN.md, which is not in the repository"
        assert "closing note" not in text(doc), f"{name(doc)} cites an issue's closing note; give the figure"
