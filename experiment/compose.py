"""Composing a subtest's resources into a run workspace (what the agent sees), spec §1.7.

This follows ProjectScylla's ``TierManager.prepare_workspace`` / ``_create_symlinks`` /
``_compose_claude_md`` / ``_create_settings_json`` / ``build_resource_suffix`` /
``build_merged_baseline``, with these deliberate differences:

* **Copies, not symlinks.** The original symlinks skills and agents from the shared dir into
  ``.claude/``. We copy them (``shutil.copytree``/``copy2``, following symlinks), so an archived
  attempt in ``.failed/`` stays self-contained and readable when the tiers checkout moves or changes.
  The agent sees identical bytes either way.
* **Missing resources block instead of silently vanishing** (``strict=True``, the default): the
  original skips a block/agent level/skill category it cannot find, which would rerun a subtest
  under a different condition than the original run. ``strict=False`` restores the lenient behaviour.
* **T5 inheritance never crashes**: missing parent results raise :class:`RepairBlocked`
  ("... parent tiers must complete first"), which the caller turns into a skipped run (spec §8.9).
* **Suffix variant.** Experiments from January 2026 (like the sample) have a resource-usage suffix
  without the "Test Environment Constraints" section that HEAD adds. With ``suffix_variant="auto"``
  we pick the variant whose CLAUDE.md hash matches the subtest's recorded ``config_manifest.json``,
  falling back to HEAD's.
* Baseline inheritance from the previous tier is not applied: reruns always pass ``None`` (spec §3.2).
  T5's ``inherit_best_from`` merge is applied.

Quirks kept on purpose because they shape what the agent saw: T0/00 and T0/01 remove ``CLAUDE.md``
and ``.claude/`` and write only ``settings.json``; ``settings.json`` is built from the subtest's own
resources (for T5 the inherited tools/MCP servers are *not* added to it); a subtest with empty
``resources`` and no inheritance gets no ``CLAUDE.md``.

No git operations happen here; the caller commits ``CLAUDE.md`` and ``.claude/``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from experiment.errors import FormatError, RepairBlocked
from experiment.jsonio import atomic_write_text, read_json
from experiment.tiers import SubtestDef, TiersDir, normalize_tier

__all__ = [
    "ComposedResources",
    "build_merged_resources",
    "build_resource_suffix",
    "compose_workspace",
    "manifest_dict",
    "merge_tier_resources",
    "recorded_claude_md_hash",
    "settings_dict",
    "tier_baseline_resources",
]

SuffixVariant = Literal["auto", "legacy", "head"]

_GENERIC = "Complete this task using available tools and your best judgment."
_TEST_CONSTRAINTS = (
    "\n\n## Test Environment Constraints\n\n"
    "**CRITICAL: This is a test environment. "
    "The following WRITE operations are FORBIDDEN:**\n\n"
    "- DO NOT run `git push` or push to any remote repository\n"
    "- DO NOT create pull requests (`gh pr create` or similar)\n"
    "- DO NOT comment on or modify GitHub issues or PRs\n"
    "- DO NOT delete remote branches (`git push origin --delete`)\n"
    "- All changes must remain LOCAL to this workspace - no remote writes\n"
    "- Read-only remote operations (`git fetch`, `git pull`) are permitted\n"
)
_CLEANUP = (
    "\n\n## Cleanup Requirements\n\n"
    "- Remove any temporary files created during task completion "
    "(build artifacts, cache files, etc.)\n"
    "- Clean up after yourself - the workspace should contain only final deliverables\n"
)
_FIX_TIERS = "pass --tiers-dir pointing at a complete ProjectScylla checkout"


@dataclass
class ComposedResources:
    """What was composed, i.e. what ``config_manifest.json`` records (plus diagnostics)."""

    tier_id: str
    subtest_id: str
    fixture_config_path: str
    #: The subtest's own resources (the manifest's ``resources``).
    resources: dict[str, Any]
    #: What was actually laid out (the merged resources for T5 with inheritance).
    applied_resources: dict[str, Any]
    claude_md_hash: str | None
    #: T5 only: parent tier → best subtest whose manifest was merged.
    inherited_tiers: dict[str, str] = field(default_factory=dict)
    #: T5 only: parent tiers skipped because their best subtest or manifest was missing.
    skipped_tiers: list[str] = field(default_factory=list)
    suffix_variant: str | None = None
    #: True/False when a recorded manifest hash was available to compare with; None otherwise.
    matches_recorded_hash: bool | None = None


# --------------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------------


def _agent_names(resources: dict[str, Any], shared_dir: Path) -> list[str]:
    spec = resources.get("agents") or {}
    names: list[str] = []
    for level in spec.get("levels", []) or []:
        level_dir = shared_dir / "agents" / f"L{level}"
        if level_dir.is_dir():
            names.extend(f.stem for f in level_dir.glob("*.md"))
    names.extend(str(n).replace(".md", "") for n in spec.get("names", []) or [])
    return names


def _skill_names(resources: dict[str, Any], shared_dir: Path) -> list[str]:
    spec = resources.get("skills") or {}
    names: list[str] = []
    for cat in spec.get("categories", []) or []:
        cat_dir = shared_dir / "skills" / cat
        if cat_dir.is_dir():
            names.extend(d.name for d in cat_dir.iterdir() if d.is_dir())
    names.extend(spec.get("names", []) or [])
    return names


def _bullets(prefix_many: str, prefix_one: str, names: list[str]) -> str:
    bullet_list = "\n".join(f"- {name}" for name in sorted(set(names)))
    prefix = prefix_many if len(names) > 1 else prefix_one
    return f"{prefix}\n\n{bullet_list}"


def build_resource_suffix(
    resources: dict[str, Any], shared_dir: Path, *, variant: Literal["legacy", "head"] = "head"
) -> str:
    """The resource-usage text appended to CLAUDE.md (``TierManager.build_resource_suffix``).

    ``legacy`` omits the "Test Environment Constraints" section (experiments before it existed).
    """
    suffixes: list[str] = []
    agents = _agent_names(resources, shared_dir) if "agents" in resources else []
    if agents:
        suffixes.append(
            _bullets(
                "Maximize usage of the following sub-agents to solve this task:",
                "Use the following sub-agent to solve this task:",
                agents,
            )
        )
    skills = _skill_names(resources, shared_dir) if "skills" in resources else []
    if skills:
        suffixes.append(
            _bullets(
                "Maximize usage of the following skills to complete this task:",
                "Use the following skill to complete this task:",
                skills,
            )
        )
    if "mcp_servers" in resources:
        mcp = [m.get("name", m) if isinstance(m, dict) else m for m in resources["mcp_servers"] or []]
        if mcp:
            suffixes.append(
                _bullets(
                    "Maximize usage of the following MCP servers to complete this task:",
                    "Use the following MCP server to complete this task:",
                    mcp,
                )
            )
    tools = resources.get("tools")
    if isinstance(tools, dict):
        if tools.get("enabled") == "all":
            suffixes.append("Maximize usage of all available tools to complete this task.")
        elif tools.get("names"):
            names = list(tools["names"])
            bullet_list = "\n".join(f"- {n}" for n in sorted(names))
            prefix = (
                "Maximize usage of the following tools to complete this task:"
                if len(names) > 1
                else "Use the following tool to complete this task:"
            )
            suffixes.append(f"{prefix}\n\n{bullet_list}")
    base = "\n\n".join(suffixes) if suffixes else _GENERIC
    return base + (_TEST_CONSTRAINTS if variant == "head" else "") + _CLEANUP


def settings_dict(resources: dict[str, Any], *, thinking_enabled: bool, agent_teams: bool) -> dict[str, Any]:
    """The content of ``.claude/settings.json`` (``TierManager._create_settings_json``)."""
    settings: dict[str, Any] = {"alwaysThinkingEnabled": thinking_enabled}
    tools = resources.get("tools")
    if isinstance(tools, dict):
        enabled = tools.get("enabled", [])
        if enabled and enabled != "all":
            settings["allowedTools"] = enabled
    servers = resources.get("mcp_servers")
    if servers:
        mcp: dict[str, Any] = {}
        for server in servers:
            if isinstance(server, dict):
                name = server["name"]
                source = server.get("source", "modelcontextprotocol/servers")
            else:
                name, source = server, "modelcontextprotocol/servers"
            mcp[name] = {"command": "npx", "args": ["-y", f"@{source}/{name}"]}
        settings["mcpServers"] = mcp
    if agent_teams:
        settings.setdefault("env", {})["CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS"] = "1"
    return settings


def _dedup(items: list[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


def merge_tier_resources(merged: dict[str, Any], new: dict[str, Any]) -> None:
    """Merge ``new`` into ``merged`` in place (``TierManager._merge_tier_resources``).

    claude_md replaces; skills/agents names and levels are unions; tools ``"all"`` wins, else union;
    MCP servers are a union by name. Unions keep first-seen order (the original used ``set``, whose
    order is arbitrary; agents levels are sorted as in the original).
    """
    new = copy.deepcopy(new)
    if "claude_md" in new:
        merged["claude_md"] = new["claude_md"]
    if "skills" in new:
        skills = merged.setdefault("skills", {})
        for key in ("categories", "names"):
            if key in new["skills"]:
                skills[key] = _dedup(list(skills.get(key, [])) + list(new["skills"][key]))
    if "tools" in new:
        tools = merged.setdefault("tools", {})
        new_enabled = new["tools"].get("enabled", [])
        old_enabled = tools.get("enabled", [])
        if new_enabled == "all" or old_enabled == "all":
            tools["enabled"] = "all"
        elif isinstance(new_enabled, list) and isinstance(old_enabled, list):
            tools["enabled"] = _dedup(old_enabled + new_enabled)
    if "mcp_servers" in new:
        servers = merged.setdefault("mcp_servers", [])
        known = {s["name"] if isinstance(s, dict) else s for s in servers}
        for server in new["mcp_servers"]:
            name = server["name"] if isinstance(server, dict) else server
            if name not in known:
                servers.append(server)
                known.add(name)
    if "agents" in new:
        agents = merged.setdefault("agents", {})
        if "levels" in new["agents"]:
            agents["levels"] = sorted(set(agents.get("levels", [])) | set(new["agents"]["levels"]))
        if "names" in new["agents"]:
            agents["names"] = _dedup(list(agents.get("names", [])) + list(new["agents"]["names"]))


# --------------------------------------------------------------------------------------------------
# Reading the experiment (T5 inheritance, recorded manifests)
# --------------------------------------------------------------------------------------------------


def _tier_dirs(experiment_dir: Path, tier: str) -> list[Path]:
    """Candidate tier dirs: the flat layout first, then HEAD's phased ``completed/``."""
    return [experiment_dir / tier, experiment_dir / "completed" / tier]


def _read_json_or_none(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except FormatError:
        return None


def _best_subtest(tier_dir: Path) -> str | None:
    result = _read_json_or_none(tier_dir / "result.json")
    best = result.get("best_subtest") if isinstance(result, dict) else None
    if not best:
        selection = _read_json_or_none(tier_dir / "best_subtest.json")
        best = selection.get("winning_subtest") if isinstance(selection, dict) else None
    return str(best) if best else None


def build_merged_resources(
    experiment_dir: Path, inherit_from: list[str], *, for_what: str = "T5"
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Merge the resources of the best subtest of each tier in ``inherit_from``.

    Returns ``(merged, used {tier: subtest}, skipped tiers)``. Like the original, a parent tier
    without a best subtest is skipped and a best subtest without ``config_manifest.json`` falls back
    to the first subtest that has one. If no parent tier is usable, raises RepairBlocked.
    """
    merged: dict[str, Any] = {}
    used: dict[str, str] = {}
    skipped: list[str] = []
    for raw in inherit_from:
        tier = normalize_tier(raw)
        found = False
        for tier_dir in _tier_dirs(Path(experiment_dir), tier):
            best = _best_subtest(tier_dir)
            if not best:
                continue
            manifest_path = tier_dir / best / "config_manifest.json"
            chosen = best
            if not manifest_path.is_file():
                alternatives = sorted(
                    p for p in tier_dir.iterdir() if p.is_dir() and (p / "config_manifest.json").is_file()
                )
                if not alternatives:
                    continue
                chosen = alternatives[0].name
                manifest_path = alternatives[0] / "config_manifest.json"
            manifest = read_json(manifest_path)
            resources = manifest.get("resources") if isinstance(manifest, dict) else None
            if not isinstance(resources, dict):
                raise FormatError("config_manifest.json has no 'resources' mapping", manifest_path)
            merge_tier_resources(merged, resources)
            used[tier] = chosen
            found = True
            break
        if not found:
            skipped.append(tier)
    if inherit_from and len(skipped) == len(inherit_from):
        raise RepairBlocked(
            f"Failed to build merged baseline for {for_what}: no best subtest with a config_manifest.json "
            f"in {', '.join(skipped)}",
            experiment_dir,
            "Skipping this run - parent tiers must complete first",
        )
    return merged, used, skipped


def recorded_claude_md_hash(experiment_dir: Path, tier: str, subtest_id: str) -> tuple[bool, str | None]:
    """``(found, hash)`` from the subtest's recorded ``config_manifest.json`` (flat or phased layout)."""
    for tier_dir in _tier_dirs(Path(experiment_dir), normalize_tier(tier)):
        manifest = _read_json_or_none(tier_dir / subtest_id / "config_manifest.json")
        if isinstance(manifest, dict) and "claude_md_hash" in manifest:
            return True, manifest["claude_md_hash"]
    return False, None


def tier_baseline_resources(experiment_dir: Path, tier: str) -> dict[str, Any] | None:
    """The previous-tier baseline resources the original runner recorded for ``tier``.

    That is ``<exp>/<tier>/result.json`` ``inherited_from.resources``, or None when empty/absent. The
    original wrote it into each subtest manifest's ``inherited_from``; reruns never apply it.
    """
    for tier_dir in _tier_dirs(Path(experiment_dir), normalize_tier(tier)):
        result = _read_json_or_none(tier_dir / "result.json")
        if isinstance(result, dict):
            inherited = result.get("inherited_from")
            resources = inherited.get("resources") if isinstance(inherited, dict) else None
            return resources or None
    return None


# --------------------------------------------------------------------------------------------------
# Planning and writing
# --------------------------------------------------------------------------------------------------


def _missing(what: str, path: Path, label: str) -> RepairBlocked:
    return RepairBlocked(f"Tiers checkout lacks {what} used by {label}", path, _FIX_TIERS)


def _plan_claude_md(
    resources: dict[str, Any],
    suffix: str | None,
    shared_dir: Path,
    strict: bool,
    label: str,
    variant: Literal["legacy", "head"] = "head",
) -> str | None:
    """The CLAUDE.md content ``_create_symlinks``/``_compose_claude_md`` would write, or None.

    ``head`` joins blocks with a blank line (``"\\n\\n".join``) as HEAD does; ``legacy`` reproduces the
    January 2026 sample byte-for-byte: blocks (each ending in a newline) separated by exactly one
    blank line, and one blank line before the suffix.
    """
    if "claude_md" not in resources:
        return suffix or None
    blocks_dir = shared_dir / "blocks"
    block_ids = (resources.get("claude_md") or {}).get("blocks", []) or []
    if not blocks_dir.is_dir():
        if strict and block_ids:
            raise _missing("the blocks/ directory", blocks_dir, label)
        return None
    if not block_ids and not suffix:
        return None
    parts: list[str] = []
    for block_id in block_ids:
        matches = sorted(blocks_dir.glob(f"{block_id}-*.md"))
        if matches:
            parts.append(matches[0].read_text(encoding="utf-8"))
        elif strict:
            raise _missing(f"CLAUDE.md block {block_id}", blocks_dir, label)
    if variant == "legacy":
        parts = [p.rstrip("\n") for p in parts]
    content = "\n\n".join(parts)
    if suffix:
        content = f"{content}\n\n{suffix}" if content else suffix
    elif variant == "legacy" and content:
        content += "\n"
    return content or None


def _copy_resources(
    workspace: Path,
    resources: dict[str, Any],
    shared_dir: Path,
    strict: bool,
    label: str,
    *,
    dry: bool = False,
) -> None:
    """Copy skills and agents into ``.claude/`` (the original symlinks them); ``dry`` only checks."""
    if "skills" in resources:
        spec = resources["skills"] or {}
        skills_dir = workspace / ".claude" / "skills"
        if not dry:
            skills_dir.mkdir(parents=True, exist_ok=True)
        root = shared_dir / "skills"
        for category in spec.get("categories", []) or []:
            category_dir = root / category
            if not category_dir.is_dir():
                if strict:
                    raise _missing(f"skill category {category!r}", category_dir, label)
                continue
            for skill in sorted(category_dir.iterdir()):
                dest = skills_dir / skill.name
                if not dry and skill.is_dir() and not dest.exists():
                    shutil.copytree(skill, dest, symlinks=False)
        for name in spec.get("names", []) or []:
            source = next(
                (c / name for c in sorted(root.iterdir()) if c.is_dir() and (c / name).exists())
                if root.is_dir()
                else (),
                None,
            )
            if source is None:
                if strict:
                    raise _missing(f"skill {name!r}", root, label)
                continue
            dest = skills_dir / name
            if not dry and not dest.exists():
                shutil.copytree(source, dest, symlinks=False)
    if "agents" in resources:
        spec = resources["agents"] or {}
        agents_dir = workspace / ".claude" / "agents"
        if not dry:
            agents_dir.mkdir(parents=True, exist_ok=True)
        root = shared_dir / "agents"
        for level in spec.get("levels", []) or []:
            level_dir = root / f"L{level}"
            if not level_dir.is_dir():
                if strict:
                    raise _missing(f"agent level L{level}", level_dir, label)
                continue
            for agent in sorted(level_dir.iterdir()):
                dest = agents_dir / agent.name
                if not dry and agent.is_file() and agent.suffix == ".md" and not dest.exists():
                    shutil.copy2(agent, dest)
        for name in spec.get("names", []) or []:
            source = next(
                (
                    d / name
                    for d in (sorted(root.iterdir()) if root.is_dir() else [])
                    if d.is_dir() and d.name.startswith("L") and (d / name).exists()
                ),
                None,
            )
            if source is None:
                if strict:
                    raise _missing(f"agent {name!r}", root, label)
                continue
            dest = agents_dir / name
            if not dry and not dest.exists():
                shutil.copy2(source, dest)


def _write_settings(workspace: Path, settings: dict[str, Any]) -> None:
    # The sample's settings.json ends with a newline (HEAD's json.dump does not add one).
    atomic_write_text(workspace / ".claude" / "settings.json", json.dumps(settings, indent=2) + "\n")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def compose_workspace(
    workspace: Path,
    tiers: TiersDir,
    tier: str,
    subtest: SubtestDef,
    *,
    thinking_enabled: bool = False,
    experiment_dir: Path | None = None,
    strict: bool = True,
    suffix_variant: SuffixVariant = "auto",
) -> ComposedResources:
    """Lay out ``CLAUDE.md`` and ``.claude/`` for ``subtest`` in ``workspace`` (spec §1.7).

    ``experiment_dir`` is needed for T5 inheritance and for ``suffix_variant="auto"`` (which compares
    with the recorded manifest hash). Raises RepairBlocked when T5 parents are missing or (strict) a
    referenced resource is absent from the tiers checkout; nothing is written in that case.
    """
    workspace = Path(workspace)
    tier = normalize_tier(tier)
    shared_dir = tiers.shared_dir
    label = f"{tier}/{subtest.id}"
    own = copy.deepcopy(subtest.resources)
    result = ComposedResources(
        tier_id=tier,
        subtest_id=subtest.id,
        fixture_config_path=subtest.fixture_config_path,
        resources=own,
        applied_resources=copy.deepcopy(own),
        claude_md_hash=None,
    )
    settings = settings_dict(own, thinking_enabled=thinking_enabled, agent_teams=subtest.agent_teams)

    recorded_found, recorded_hash = (
        recorded_claude_md_hash(experiment_dir, tier, subtest.id)
        if experiment_dir is not None
        else (False, None)
    )

    if tier == "T0" and subtest.id in ("00", "01"):
        claude_md = workspace / "CLAUDE.md"
        if claude_md.is_symlink() or claude_md.exists():
            claude_md.unlink()
        claude_dir = workspace / ".claude"
        if claude_dir.is_symlink():
            claude_dir.unlink()
        elif claude_dir.exists():
            shutil.rmtree(claude_dir)
        _write_settings(workspace, settings)
        result.applied_resources = {}
        if recorded_found:
            result.matches_recorded_hash = recorded_hash is None
        return result

    if tier == "T5" and subtest.inherit_best_from:
        if experiment_dir is None:
            raise RepairBlocked(
                f"Failed to build merged baseline for {label}: no experiment directory given",
                subtest.path,
                "Skipping this run - parent tiers must complete first",
            )
        merged, used, skipped = build_merged_resources(
            experiment_dir, subtest.inherit_best_from, for_what=label
        )
        for key, value in own.items():
            if key not in merged:
                merged[key] = copy.deepcopy(value)
            else:
                merge_tier_resources(merged, {key: value})
        applied = merged
        result.inherited_tiers, result.skipped_tiers = used, skipped
        lay_out = True
    else:
        applied = own
        lay_out = bool(own)  # _overlay_subtest does nothing for empty resources
    result.applied_resources = applied

    content: str | None = None
    if lay_out:
        candidates: dict[str, str | None] = {
            variant: _plan_claude_md(
                applied,
                build_resource_suffix(applied, shared_dir, variant=variant),
                shared_dir,
                strict,
                label,
                variant,
            )
            for variant in ("head", "legacy")
        }
        if suffix_variant == "auto":
            chosen = "head"
            if recorded_found:
                for variant in ("head", "legacy"):
                    text = candidates[variant]
                    if (None if text is None else _sha256(text)) == recorded_hash:
                        chosen = variant
                        break
        else:
            chosen = suffix_variant
        result.suffix_variant = chosen
        content = candidates[chosen]
        if strict:  # check everything before writing anything
            _copy_resources(workspace, applied, shared_dir, strict, label, dry=True)
        _copy_resources(workspace, applied, shared_dir, strict, label)
        if content is not None:
            atomic_write_text(workspace / "CLAUDE.md", content)

    claude_md = workspace / "CLAUDE.md"
    if content is not None:
        result.claude_md_hash = _sha256(content)
    elif claude_md.is_file():  # pre-existing CLAUDE.md left in place, as the original does
        result.claude_md_hash = hashlib.sha256(claude_md.read_bytes()).hexdigest()
    if recorded_found:
        result.matches_recorded_hash = result.claude_md_hash == recorded_hash
    _write_settings(workspace, settings)
    return result


def manifest_dict(
    composed: ComposedResources,
    *,
    inherited_from: dict[str, Any] | None = None,
    composed_at: datetime | str | None = None,
) -> dict[str, Any]:
    """The ``config_manifest.json`` content, with exactly the original's keys in its order.

    ``inherited_from`` is the previous-tier baseline's resources in the original (None in reruns;
    see :func:`tier_baseline_resources` to carry over what the original recorded).
    """
    if composed_at is None:
        composed_at = datetime.now(UTC)
    if isinstance(composed_at, datetime):
        composed_at = composed_at.isoformat()
    return {
        "tier_id": composed.tier_id,
        "subtest_id": composed.subtest_id,
        "fixture_config_path": composed.fixture_config_path,
        "resources": copy.deepcopy(composed.resources),
        "composed_at": composed_at,
        "claude_md_hash": composed.claude_md_hash,
        "inherited_from": copy.deepcopy(inherited_from) if inherited_from else None,
    }
