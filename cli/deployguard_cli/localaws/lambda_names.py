"""How Lambda reads a function reference that may carry a qualifier (a version or an alias).

:func:`deployguard.appspec.plain_function_name` drops the qualifier (the guard asks about the
function); the local Lambda and the rehearsal's CodeDeploy keep it, because the qualifier picks
what runs.
"""

from __future__ import annotations

__all__ = ["qualified_function_name"]


def qualified_function_name(function: str) -> str:
    """``orders``, ``orders:live`` and ``arn:aws:lambda:…:function:orders[:live]`` → ``orders`` or
    ``orders:live``: the ARN's prefix dropped, the qualifier kept."""
    return function.split(":function:", 1)[-1]
