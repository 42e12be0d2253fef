"""What a composition reads from the experiment: T5's inherited resources and recorded manifests.

Follows ProjectScylla's ``build_merged_baseline`` / ``_merge_tier_resources``; both the flat layout
(``<exp>/T0``) and HEAD's phased one (``<exp>/completed/T0``) are read.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from experiment.errors import FormatError, RepairBlocked
from experiment.jsonio import read_json
from experiment.tiers import normalize_tier

__all__ = [
    "build_merged_resources",
    "merge_tier_resources",
    "recorded_claude_md_hash",
    "tier_baseline_resources",
]


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
