"""The repository's events and handlers as tests load them, and the Lambda context they get."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
REGION = "us-east-1"


def load_event(name: str) -> dict[str, Any]:
    """One JSON event from events/ — the same files `sam local invoke -e` uses."""
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def load_module(path: Path, name: str) -> ModuleType:
    """A Python file as a module (handlers are not a package; no sys.path edits)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses (and pickling) look a class's module up by name
    spec.loader.exec_module(module)
    return module


def load_handler(function: str) -> ModuleType:
    """functions/<function>/app.py as a module."""
    return load_module(ROOT / "functions" / function / "app.py", f"handler_{function}")


@dataclass
class FakeLambdaContext:
    """The parts of Lambda's context object the handlers use."""

    function_name: str = "CodeDeployHook_deployguard-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = (
        f"arn:aws:lambda:{REGION}:123456789012:function:CodeDeployHook_deployguard-test"
    )
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    remaining_ms: int = 120_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms
