"""Locating ProjectScylla's tier/subtest definitions and reading them.

The subtest definitions are not part of an experiment: they live in a ProjectScylla checkout under
``tests/claude-code/shared/subtests/t<n>/NN-name.yaml`` (blocks, agents and skills sit next to
them). The original runner finds that checkout by walking up from the experiment dir (spec §2.1);
:func:`find_tiers_dir` does the same, minus the package-root fallback, and also accepts an explicit
``--tiers-dir`` in several lenient forms.

:func:`list_subtests` mirrors ``FileSystemSubtestProvider.discover_subtests`` (spec §2.2): YAML files
sorted by name, only names starting with two digits, id = those two digits, and root-level
``tools``/``mcp_servers``/``agents``/``skills`` folded into ``resources`` exactly as the original does
(so ``resources`` is what ``config_manifest.json`` records).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from experiment.errors import FilterError, FormatError, RepairBlocked

__all__ = [
    "AgentsSpec",
    "ClaudeMdSpec",
    "McpServerSpec",
    "ResourceSpec",
    "SkillsSpec",
    "SubtestDef",
    "TierSettings",
    "TiersDir",
    "ToolsSpec",
    "clear_cache",
    "find_tiers_dir",
    "list_subtests",
    "load_tier_config",
    "normalize_tier",
    "subtest_ids",
]

#: How many directories are checked during auto-detection: the experiment dir and 4 ancestors.
AUTO_DETECT_LEVELS = 5
#: Relative location of the shared dir inside a ProjectScylla checkout.
SHARED_REL = Path("tests") / "claude-code" / "shared"
#: Relative location of the test fixtures inside a ProjectScylla checkout.
FIXTURE_TESTS_REL = Path("tests") / "fixtures" / "tests"

_TIER_RE = re.compile(r"^[Tt](\d+)$")


@dataclass(frozen=True)
class TiersDir:
    """Where the tier definitions are: the (optional) test dir and the shared dir."""

    test_dir: Path | None
    shared_dir: Path

    @property
    def subtests_dir(self) -> Path:
        return self.shared_dir / "subtests"

    @property
    def tiers_yaml(self) -> Path:
        return self.shared_dir / "tiers.yaml"


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class ClaudeMdSpec(_Loose):
    blocks: list[str] = Field(default_factory=list)


class SkillsSpec(_Loose):
    categories: list[str] = Field(default_factory=list)
    names: list[str] = Field(default_factory=list)


class AgentsSpec(_Loose):
    levels: list[int] = Field(default_factory=list)
    names: list[str] = Field(default_factory=list)


class ToolsSpec(_Loose):
    #: ``"all"``, a list of tool names, or absent.
    enabled: str | list[str] | None = None
    names: list[str] | None = None


class McpServerSpec(_Loose):
    name: str
    source: str | None = None
    config_path: str | None = None


class ResourceSpec(_Loose):
    """Typed view of a subtest's ``resources`` (validation only; the raw dict is kept verbatim)."""

    claude_md: ClaudeMdSpec | None = None
    skills: SkillsSpec | None = None
    agents: AgentsSpec | None = None
    tools: ToolsSpec | None = None
    mcp_servers: list[McpServerSpec | str] | None = None


class SubtestDef(BaseModel):
    """One ``subtests/t<n>/NN-*.yaml`` definition, normalised like the original provider."""

    model_config = ConfigDict(extra="allow")

    id: str
    tier: str
    path: Path
    name: str
    description: str
    extends_previous: bool
    #: Tier ids such as ``["T0", "T1"]`` (T5 only).
    inherit_best_from: list[str] = Field(default_factory=list)
    #: The ``resources`` section plus root-level tools/mcp_servers/agents/skills (original behaviour).
    resources: dict[str, Any] = Field(default_factory=dict)
    agent_teams: bool = False
    system_prompt_mode: str = "custom"

    @property
    def spec(self) -> ResourceSpec:
        return ResourceSpec.model_validate(self.resources)

    @property
    def fixture_config_path(self) -> str:
        """The path ``config_manifest.json`` records (relative to the ProjectScylla checkout)."""
        return (SHARED_REL / "subtests" / self.tier.lower() / self.path.name).as_posix()


class TierSettings(BaseModel):
    """Per-tier settings from ``shared/tiers.yaml`` (only what a workspace may need)."""

    model_config = ConfigDict(extra="allow")

    tier: str
    name: str | None = None
    description: str | None = None
    tools_enabled: bool | None = None
    delegation_enabled: bool | None = None


# --------------------------------------------------------------------------------------------------
# Locating the tiers dir
# --------------------------------------------------------------------------------------------------


def _first_test_dir(fixture_tests: Path) -> Path | None:
    """The alphabetically first ``test-*`` directory in ``fixture_tests``, if any."""
    if not fixture_tests.is_dir():
        return None
    try:
        candidates = sorted(p for p in fixture_tests.iterdir() if p.name.startswith("test-") and p.is_dir())
    except OSError:
        return None
    return candidates[0] if candidates else None


def _shared_from_test_dir(test_dir: Path) -> Path:
    return test_dir.parent.parent.parent / "claude-code" / "shared"


def _is_shared(path: Path) -> bool:
    return (path / "subtests").is_dir()


def _require_shared(tiers: TiersDir, how: str) -> TiersDir:
    if not _is_shared(tiers.shared_dir):
        raise RepairBlocked(
            f"Tiers directory {how} has no subtests/ in its shared dir",
            tiers.shared_dir,
            "pass --tiers-dir DIR pointing at the ProjectScylla checkout or its tests/claude-code/shared",
        )
    return tiers


def _resolve_explicit(explicit: Path) -> TiersDir:
    path = Path(explicit).expanduser().absolute()
    if not path.is_dir():
        raise RepairBlocked(
            "--tiers-dir is not a directory",
            path,
            "pass the ProjectScylla checkout, its tests/ dir, tests/claude-code/shared, "
            "or a test dir like tests/fixtures/tests/test-001",
        )
    # The shared dir itself.
    if _is_shared(path):
        test_dir = _first_test_dir(path.parent.parent / "fixtures" / "tests")
        return TiersDir(test_dir=test_dir, shared_dir=path)
    # A repo root, a tests/ dir, or a claude-code/ dir.
    for rel_shared, rel_fixtures in (
        (SHARED_REL, FIXTURE_TESTS_REL),
        (Path("claude-code") / "shared", Path("fixtures") / "tests"),
        (Path("shared"), Path("..") / "fixtures" / "tests"),
    ):
        if _is_shared(path / rel_shared):
            test_dir = _first_test_dir(path / rel_fixtures)
            return TiersDir(test_dir=test_dir, shared_dir=path / rel_shared)
    # A test dir (tests/fixtures/tests/test-NNN) or its parent (tests/fixtures/tests).
    if _is_shared(_shared_from_test_dir(path)):
        return TiersDir(test_dir=path, shared_dir=_shared_from_test_dir(path))
    first = _first_test_dir(path)
    if first is not None and _is_shared(_shared_from_test_dir(first)):
        return TiersDir(test_dir=first, shared_dir=_shared_from_test_dir(first))
    raise RepairBlocked(
        "--tiers-dir does not contain ProjectScylla tier definitions (no tests/claude-code/shared/subtests/)",
        path,
        "pass the ProjectScylla checkout, its tests/ dir, tests/claude-code/shared, "
        "or a test dir like tests/fixtures/tests/test-001",
    )


def find_tiers_dir(experiment_dir: Path, explicit: Path | None = None) -> TiersDir:
    """Find the tier definitions for an experiment (spec §2.1), or use ``explicit`` (``--tiers-dir``).

    Auto-detection checks ``experiment_dir`` and its 4 nearest ancestors (never the filesystem root)
    for ``<dir>/tests/fixtures/tests/test-*`` and takes the alphabetically first test dir; the shared
    dir is ``test_dir/../../../claude-code/shared``. There is no package-root fallback.
    """
    if explicit is not None:
        return _resolve_explicit(explicit)

    current = Path(experiment_dir).expanduser().absolute()
    searched: list[str] = []
    for _ in range(AUTO_DETECT_LEVELS):
        if current.parent == current:  # filesystem root: never checked
            break
        fixture_tests = current / FIXTURE_TESTS_REL
        searched.append(str(fixture_tests))
        test_dir = _first_test_dir(fixture_tests)
        if test_dir is not None:
            return _require_shared(
                TiersDir(test_dir=test_dir, shared_dir=_shared_from_test_dir(test_dir)),
                f"auto-detected from {test_dir}",
            )
        current = current.parent
    raise RepairBlocked(
        "Could not auto-detect tiers directory (no test-* dir in any of: " + ", ".join(searched) + ")",
        None,
        "pass --tiers-dir DIR pointing at the ProjectScylla checkout or its tests/claude-code/shared",
    )


# --------------------------------------------------------------------------------------------------
# Reading subtests and tier settings
# --------------------------------------------------------------------------------------------------


def normalize_tier(tier: str) -> str:
    """``"t3"``/``"T3"`` → ``"T3"``; anything else is a FilterError."""
    match = _TIER_RE.match(str(tier).strip())
    if not match:
        raise FilterError("Unknown tier", tier, "tiers are named T0, T1, ... T6")
    return f"T{int(match.group(1))}"


def _load_yaml(path: Path) -> Any:
    import yaml  # here, not at the top: the dry run finds the tiers dir without parsing YAML

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(f"Cannot read YAML file ({exc.__class__.__name__})", path) from None
    try:
        # libyaml's parser when PyYAML was built with it (the wheels are): the same documents and
        # error marks as yaml.safe_load, 7x faster (a dry run parses every subtest definition).
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise FormatError(
            f"Invalid YAML{where}", path, "fix or restore the file in the tiers checkout"
        ) from None


def _parse_subtest(path: Path, tier: str) -> SubtestDef:
    data = _load_yaml(path) or {}
    if not isinstance(data, dict):
        raise FormatError("Subtest definition is not a YAML mapping", path)
    stem = path.stem
    subtest_id = stem[:2]
    resources = data.get("resources") or {}
    if not isinstance(resources, dict):
        raise FormatError("Subtest 'resources' is not a mapping", path)
    resources = dict(resources)
    # Root-level fields are folded into resources, like FileSystemSubtestProvider.
    for key in ("mcp_servers", "tools", "agents", "skills"):
        value = data.get(key)
        if value:
            resources[key] = value
    extends_default = tier != "T0" or int(subtest_id) >= 2
    extra = {
        k: v
        for k, v in data.items()
        if k
        not in {
            "name",
            "description",
            "extends_previous",
            "inherit_best_from",
            "resources",
            "agent_teams",
            "system_prompt_mode",
            "id",
            "tier",
            "path",
        }
    }
    try:
        inherit = [normalize_tier(t) for t in (data.get("inherit_best_from") or [])]
    except FilterError:
        raise FormatError("Subtest 'inherit_best_from' names an unknown tier", path) from None
    try:
        subtest = SubtestDef(
            id=subtest_id,
            tier=tier,
            path=path,
            name=data.get("name", f"{tier} Sub-test {subtest_id}"),
            description=data.get("description", f"Sub-test configuration {stem}"),
            extends_previous=data.get("extends_previous", extends_default),
            inherit_best_from=inherit,
            resources=resources,
            agent_teams=bool(data.get("agent_teams", False)),
            system_prompt_mode=data.get("system_prompt_mode", "custom"),
            **extra,
        )
        ResourceSpec.model_validate(resources)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ())) or "<root>"
        raise FormatError(f"Invalid subtest definition ({loc}: {first.get('msg')})", path) from None
    return subtest


_CACHE: dict[tuple[str, str], tuple[int, tuple[SubtestDef, ...]]] = {}


def clear_cache() -> None:
    """Forget cached subtest lists (tests; or after the tiers checkout changed)."""
    _CACHE.clear()


def _cached_subtests(tiers: TiersDir, tier: str) -> tuple[SubtestDef, ...]:
    """The parsed subtests of ``tier``, cached per (shared dir, tier) until the tier dir's mtime
    changes. Shared objects: never handed out to a caller that may mutate them."""
    tier = normalize_tier(tier)
    tier_dir = tiers.subtests_dir / tier.lower()
    try:
        mtime = tier_dir.stat().st_mtime_ns
    except OSError:
        return ()
    key = (str(tiers.shared_dir.absolute()), tier)
    cached = _CACHE.get(key)
    if cached is None or cached[0] != mtime:
        files = sorted(p for p in tier_dir.glob("*.yaml") if p.stem[:2].isdigit() and p.is_file())
        cached = (mtime, tuple(_parse_subtest(p, tier) for p in files))
        _CACHE[key] = cached
    return cached[1]


def list_subtests(tiers: TiersDir, tier: str) -> list[SubtestDef]:
    """The subtests of ``tier`` (``"T0"``…), sorted by file name; empty if the tier dir is absent.

    Callers get fresh copies of the cached definitions, so mutating them does not poison the cache.
    """
    return [s.model_copy(deep=True) for s in _cached_subtests(tiers, tier)]


def subtest_ids(tiers: TiersDir, tier: str) -> list[str]:
    """The ids of :func:`list_subtests` (every definition parsed and checked, as there), without
    the deep copies a scan does not need."""
    return [s.id for s in _cached_subtests(tiers, tier)]


def find_subtest(tiers: TiersDir, tier: str, subtest_id: str) -> SubtestDef | None:
    """The subtest ``subtest_id`` of ``tier``, or None."""
    return next((s.model_copy(deep=True) for s in _cached_subtests(tiers, tier) if s.id == subtest_id), None)


def load_tier_config(tiers: TiersDir, tier: str) -> TierSettings:
    """Per-tier settings from ``tiers.yaml``; defaults (all None) if the file or tier is absent."""
    tier = normalize_tier(tier)
    path = tiers.tiers_yaml
    if not path.is_file():
        return TierSettings(tier=tier)
    data = _load_yaml(path) or {}
    entry = (data.get("tiers") or {}).get(tier) if isinstance(data, dict) else None
    if entry is None:
        return TierSettings(tier=tier)
    if not isinstance(entry, dict):
        raise FormatError(f"tiers.yaml entry for {tier} is not a mapping", path)
    try:
        return TierSettings(tier=tier, **{k: v for k, v in entry.items() if k != "tier"})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ())) or "<root>"
        raise FormatError(f"Invalid tiers.yaml entry for {tier} ({loc}: {first.get('msg')})", path) from None
