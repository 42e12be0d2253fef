"""Copying a subtest's skills and agents from the tiers checkout into the workspace's ``.claude/``.

ProjectScylla's ``TierManager._create_symlinks`` symlinks them; we copy (following symlinks) so an
archived attempt stays self-contained. Skills and agents are laid out the same way (groups of items
plus items by name), so one routine copies both, driven by a :class:`_Kind` that says where each
lives and what counts as an item.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiment.compose_text import missing_resource

__all__ = ["copy_resources"]


@dataclass(frozen=True)
class _Kind:
    """How one kind of ``.claude/`` resource is found in the shared dir and copied."""

    key: str
    """The resources key, and the directory name in both the shared dir and ``.claude/``."""
    groups: str
    """The spec key of its groups (skill ``categories``, agent ``levels``)."""
    group_dir: Callable[[Any], str]
    """A group's directory name under the shared ``key`` dir."""
    group_what: Callable[[Any], str]
    """A group as an error message names it."""
    noun: str
    """One item as an error message names it (``skill``, ``agent``)."""
    is_item: Callable[[Path], bool]
    """Which entries of a group directory are copied."""
    is_group: Callable[[Path], bool]
    """Which directories under the shared ``key`` dir are searched for an item given by name."""
    copy: Callable[[Path, Path], object]
    """Copies one item (following symlinks)."""


_SKILLS = _Kind(
    key="skills",
    groups="categories",
    group_dir=str,
    group_what=lambda category: f"skill category {category!r}",
    noun="skill",
    is_item=Path.is_dir,
    is_group=Path.is_dir,
    copy=lambda source, dest: shutil.copytree(source, dest, symlinks=False),
)
_AGENTS = _Kind(
    key="agents",
    groups="levels",
    group_dir=lambda level: f"L{level}",
    group_what=lambda level: f"agent level L{level}",
    noun="agent",
    is_item=lambda path: path.is_file() and path.suffix == ".md",
    is_group=lambda path: path.is_dir() and path.name.startswith("L"),
    copy=shutil.copy2,
)


def _copy_kind(
    kind: _Kind, workspace: Path, spec: dict[str, Any], shared_dir: Path, strict: bool, label: str, dry: bool
) -> None:
    """Copy every item of ``kind`` that ``spec`` selects (whole groups, then items by name)."""
    dest_dir = workspace / ".claude" / kind.key
    if not dry:
        dest_dir.mkdir(parents=True, exist_ok=True)
    root = shared_dir / kind.key
    for group in spec.get(kind.groups, []) or []:
        group_dir = root / kind.group_dir(group)
        if not group_dir.is_dir():
            if strict:
                raise missing_resource(kind.group_what(group), group_dir, label)
            continue
        for item in sorted(group_dir.iterdir()):
            dest = dest_dir / item.name
            if not dry and kind.is_item(item) and not dest.exists():
                kind.copy(item, dest)
    for name in spec.get("names", []) or []:
        groups = sorted(root.iterdir()) if root.is_dir() else []
        source = next((g / name for g in groups if kind.is_group(g) and (g / name).exists()), None)
        if source is None:
            if strict:
                raise missing_resource(f"{kind.noun} {name!r}", root, label)
            continue
        dest = dest_dir / name
        if not dry and not dest.exists():
            kind.copy(source, dest)


def copy_resources(
    workspace: Path,
    resources: dict[str, Any],
    shared_dir: Path,
    strict: bool,
    label: str,
    *,
    dry: bool = False,
) -> None:
    """Copy skills and agents into ``.claude/`` (the original symlinks them); ``dry`` only checks."""
    for kind in (_SKILLS, _AGENTS):
        if kind.key in resources:
            _copy_kind(kind, workspace, resources[kind.key] or {}, shared_dir, strict, label, dry)
