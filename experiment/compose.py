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

Modules: ``compose_text`` (CLAUDE.md and settings.json content), ``compose_inherit`` (T5
inheritance and recorded manifests), ``compose_copy`` (skills and agents into ``.claude/``); this
one lays a workspace out and builds its manifest, and re-exports the public names of the others.
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

from experiment.compose_copy import copy_resources
from experiment.compose_inherit import (
    build_merged_resources,
    merge_tier_resources,
    recorded_claude_md_hash,
    tier_baseline_resources,
)
from experiment.compose_text import build_resource_suffix, plan_claude_md, settings_dict
from experiment.errors import RepairBlocked
from experiment.jsonio import atomic_write_text
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
            variant: plan_claude_md(
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
            copy_resources(workspace, applied, shared_dir, strict, label, dry=True)
        copy_resources(workspace, applied, shared_dir, strict, label)
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
