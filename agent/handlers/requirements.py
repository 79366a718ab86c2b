"""What a handler needs installed before the agent may offer its task type.

A handler class declares ``requires``: each importable module it needs, mapped to the pip
requirement that installs it (for the built-in handlers, an extra of ``taskpost``)::

    class DocumentHandler:
        requires = {"docx": "taskpost[docs]", "markdownify": "taskpost[docs]", ...}

Discovery looks the modules up without importing them (heavy ones take seconds to import) and
skips a handler whose modules are missing, so that an agent never advertises a task type whose
jobs it would fail with "install taskpost[...]". A class without ``requires`` needs nothing.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable, Mapping

_TASKPOST_EXTRA = re.compile(r"taskpost\[([^\]]+)\]")


def module_available(name: str) -> bool:
    """Whether ``import name`` could find the module (it is not imported)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a blocked or half-installed package
        return False


def missing_requirements(factory: object) -> dict[str, list[str]]:
    """What a handler class lacks: pip requirement -> its missing modules; empty when it can run."""
    requires: Mapping[str, str] = getattr(factory, "requires", None) or {}
    missing: dict[str, list[str]] = {}
    for module, requirement in requires.items():
        if not module_available(module):
            missing.setdefault(requirement, []).append(module)
    return missing


def merged(requirements: Iterable[str]) -> list[str]:
    """The requirements with every ``taskpost[x]`` folded into one ``taskpost[x,y]``."""
    extras: set[str] = set()
    others: list[str] = []
    for requirement in requirements:
        match = _TASKPOST_EXTRA.fullmatch(requirement)
        if match:
            extras.update(extra.strip() for extra in match.group(1).split(","))
        else:
            others.append(requirement)
    folded = [f"taskpost[{','.join(sorted(extras))}]"] if extras else []
    return folded + sorted(set(others))


def install_hint(missing: Mapping[str, list[str]]) -> str:
    """One line naming what is missing and the pip command that installs it."""
    requirements = merged(missing)
    modules = ", ".join(module for names in missing.values() for module in names)
    command = " ".join(f"'{requirement}'" for requirement in requirements)
    return f"needs {' and '.join(requirements)} (missing: {modules}): pip install {command}"
