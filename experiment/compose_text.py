"""The text a composed workspace gets: ``CLAUDE.md`` (blocks plus resource suffix) and ``settings.json``.

Pure functions of a subtest's resources and the tiers checkout's shared dir; they follow
ProjectScylla's ``TierManager.build_resource_suffix``, ``_compose_claude_md`` and
``_create_settings_json`` (see :mod:`experiment.compose` for the deliberate differences).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from experiment.errors import RepairBlocked

__all__ = ["build_resource_suffix", "missing_resource", "plan_claude_md", "settings_dict"]

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


def missing_resource(what: str, path: Path, label: str) -> RepairBlocked:
    """The error for a resource that subtest ``label`` uses but the tiers checkout lacks."""
    return RepairBlocked(f"Tiers checkout lacks {what} used by {label}", path, _FIX_TIERS)


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


def plan_claude_md(
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
            raise missing_resource("the blocks/ directory", blocks_dir, label)
        return None
    if not block_ids and not suffix:
        return None
    parts: list[str] = []
    for block_id in block_ids:
        matches = sorted(blocks_dir.glob(f"{block_id}-*.md"))
        if matches:
            parts.append(matches[0].read_text(encoding="utf-8"))
        elif strict:
            raise missing_resource(f"CLAUDE.md block {block_id}", blocks_dir, label)
    if variant == "legacy":
        parts = [p.rstrip("\n") for p in parts]
    content = "\n\n".join(parts)
    if suffix:
        content = f"{content}\n\n{suffix}" if content else suffix
    elif variant == "legacy" and content:
        content += "\n"
    return content or None
