"""Tests for experiment.compose against the recorded dry-run sample's workspaces and manifests."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from experiment.compose import (
    build_resource_suffix,
    compose_workspace,
    manifest_dict,
    tier_baseline_resources,
)
from experiment.errors import RepairBlocked
from experiment.tiers import TiersDir, clear_cache, find_subtest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SHARED = FIXTURES / "scylla-tiers" / "tests" / "claude-code" / "shared"
EXP = FIXTURES / "scylla-test001-dryrun"
RUNS = [("T0", "00"), ("T1", "01"), ("T2", "01"), ("T3", "01"), ("T4", "01"), ("T5", "01"), ("T6", "01")]


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture(scope="module")
def tiers(tmp_path_factory: pytest.TempPathFactory) -> TiersDir:
    """The fixture's shared dir plus a ``skills/`` tree rebuilt from the sample's workspaces.

    The trimmed fixture checkout has no ``shared/skills/``. The sample's T1/01 workspace holds exactly
    the ``agent`` category, and T6/01 (all 9 categories) holds every skill, so we rebuild
    ``skills/agent/`` from T1/01 and put the rest under ``skills/other/``; for composition only the set
    of skill dirs across the selected categories matters.
    """
    shared = tmp_path_factory.mktemp("checkout") / "tests" / "claude-code" / "shared"
    shared.mkdir(parents=True)
    for name in ("agents", "blocks", "subtests", "compose", "tiers.yaml"):
        (shared / name).symlink_to(SHARED / name)
    t1_skills = EXP / "T1" / "01" / "run_01" / "workspace" / ".claude" / "skills"
    t6_skills = EXP / "T6" / "01" / "run_01" / "workspace" / ".claude" / "skills"
    agent_names = {p.name for p in t1_skills.iterdir()}
    for skill in t6_skills.iterdir():
        category = "agent" if skill.name in agent_names else "other"
        shutil.copytree(skill, shared / "skills" / category / skill.name)
    for category in find_subtest(TiersDir(None, SHARED), "T6", "01").resources["skills"]["categories"]:
        (shared / "skills" / category).mkdir(exist_ok=True)  # the remaining categories exist, empty
    assert agent_names <= {p.name for p in (shared / "skills" / "agent").iterdir()}
    return TiersDir(test_dir=None, shared_dir=shared)


def _files_under(root: Path) -> set[str]:
    if not root.exists():
        return set()
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _compose(tiers: TiersDir, tmp_path: Path, tier: str, sid: str, **kwargs):
    subtest = find_subtest(tiers, tier, sid)
    assert subtest is not None
    workspace = tmp_path / "workspace"
    workspace.mkdir(exist_ok=True)
    return workspace, compose_workspace(workspace, tiers, tier, subtest, experiment_dir=EXP, **kwargs)


@pytest.mark.parametrize(("tier", "sid"), RUNS)
def test_compose_matches_sample_workspace(tiers: TiersDir, tmp_path: Path, tier: str, sid: str) -> None:
    # T6/01: the sample's own workspace CLAUDE.md (sha256 49f15434...) does not hash to the
    # manifest's recorded claude_md_hash (7057c66a...), so "auto" cannot identify the variant from
    # the hash; we force the sample's (legacy) variant and still require a byte-exact CLAUDE.md.
    kwargs = {"suffix_variant": "legacy"} if tier == "T6" else {}
    workspace, composed = _compose(tiers, tmp_path, tier, sid, **kwargs)
    original = EXP / tier / sid / "run_01" / "workspace"

    assert (workspace / "CLAUDE.md").exists() == (original / "CLAUDE.md").exists()
    if (original / "CLAUDE.md").exists():
        assert (workspace / "CLAUDE.md").read_bytes() == (original / "CLAUDE.md").read_bytes()
    settings = workspace / ".claude" / "settings.json"
    assert settings.read_bytes() == (original / ".claude" / "settings.json").read_bytes()
    assert _files_under(workspace / ".claude") == _files_under(original / ".claude")
    # Copies, not symlinks, and byte-identical to what the agent saw.
    for rel in _files_under(original / ".claude"):
        assert not (workspace / ".claude" / rel).is_symlink()
        assert (workspace / ".claude" / rel).read_bytes() == (original / ".claude" / rel).read_bytes()

    recorded = json.loads((EXP / tier / sid / "config_manifest.json").read_text())
    if tier == "T6":
        assert composed.matches_recorded_hash is False
        assert composed.claude_md_hash == hashlib.sha256((original / "CLAUDE.md").read_bytes()).hexdigest()
        return
    assert composed.claude_md_hash == recorded["claude_md_hash"]
    assert composed.matches_recorded_hash is True
    if (workspace / "CLAUDE.md").exists():
        assert composed.suffix_variant == "legacy"  # the sample predates "Test Environment Constraints"


@pytest.mark.parametrize(("tier", "sid"), RUNS)
def test_manifest_dict_matches_sample(tiers: TiersDir, tmp_path: Path, tier: str, sid: str) -> None:
    _, composed = _compose(tiers, tmp_path, tier, sid, suffix_variant="legacy")
    recorded = json.loads((EXP / tier / sid / "config_manifest.json").read_text())
    if tier == "T6":  # recorded hash is not the sample workspace's CLAUDE.md hash (see above)
        recorded["claude_md_hash"] = composed.claude_md_hash
    # The original recorded the previous-tier baseline (TierResult.inherited_from) here; reruns
    # pass none, so carry over what the tier's result.json recorded.
    manifest = manifest_dict(composed, inherited_from=tier_baseline_resources(EXP, tier))
    assert list(manifest) == list(recorded)
    assert manifest["composed_at"]
    manifest.pop("composed_at")
    recorded.pop("composed_at")
    assert manifest == recorded


def test_t5_merges_best_of_parent_tier(tiers: TiersDir, tmp_path: Path) -> None:
    _, composed = _compose(tiers, tmp_path, "T5", "01")
    assert composed.inherited_tiers == {"T0": "00"}
    assert composed.applied_resources == {"claude_md": {"blocks": []}}
    assert composed.resources == {}


def test_t5_without_parent_results_is_blocked(tiers: TiersDir, tmp_path: Path) -> None:
    subtest = find_subtest(tiers, "T5", "01")
    assert subtest is not None
    exp = tmp_path / "exp"
    (exp / "T0").mkdir(parents=True)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    with pytest.raises(RepairBlocked, match="parent tiers must complete first"):
        compose_workspace(workspace, tiers, "T5", subtest, experiment_dir=exp)
    with pytest.raises(RepairBlocked, match="parent tiers must complete first"):
        compose_workspace(workspace, tiers, "T5", subtest)
    assert list(workspace.iterdir()) == []


def test_t5_falls_back_to_best_subtest_json(tiers: TiersDir, tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    (exp / "T3" / "02").mkdir(parents=True)
    (exp / "T3" / "result.json").write_text(json.dumps({"best_subtest": None}))
    (exp / "T3" / "best_subtest.json").write_text(json.dumps({"winning_subtest": "02"}))
    (exp / "T3" / "02" / "config_manifest.json").write_text(
        json.dumps({"resources": {"agents": {"levels": [4]}}})
    )
    subtest = find_subtest(tiers, "T5", "01").model_copy(update={"inherit_best_from": ["T3", "T1"]})
    workspace = tmp_path / "ws"
    workspace.mkdir()
    composed = compose_workspace(workspace, tiers, "T5", subtest, experiment_dir=exp)
    assert composed.inherited_tiers == {"T3": "02"} and composed.skipped_tiers == ["T1"]
    assert _files_under(workspace / ".claude" / "agents") == {
        p.name for p in (SHARED / "agents" / "L4").glob("*.md")
    }
    assert composed.suffix_variant == "head"  # no recorded manifest to compare with
    assert "## Test Environment Constraints" in (workspace / "CLAUDE.md").read_text()


def test_t0_00_and_01_clear_previous_config(tiers: TiersDir, tmp_path: Path) -> None:
    for sid in ("00", "01"):
        workspace = tmp_path / sid
        (workspace / ".claude" / "agents").mkdir(parents=True)
        (workspace / ".claude" / "agents" / "x.md").write_text("x")
        (workspace / "CLAUDE.md").write_text("old")
        subtest = find_subtest(tiers, "T0", sid)
        composed = compose_workspace(workspace, tiers, "T0", subtest, thinking_enabled=True)
        assert not (workspace / "CLAUDE.md").exists()
        assert _files_under(workspace / ".claude") == {"settings.json"}
        assert json.loads((workspace / ".claude" / "settings.json").read_text()) == {
            "alwaysThinkingEnabled": True
        }
        assert composed.claude_md_hash is None


def test_missing_resources_block_in_strict_mode(tmp_path: Path) -> None:
    bare = TiersDir(test_dir=None, shared_dir=SHARED)  # the fixture checkout has no skills/
    subtest = find_subtest(bare, "T1", "01")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    with pytest.raises(RepairBlocked, match="skill category 'agent'"):
        compose_workspace(workspace, bare, "T1", subtest)
    assert list(workspace.iterdir()) == []
    composed = compose_workspace(workspace, bare, "T1", subtest, strict=False)
    assert (
        (workspace / "CLAUDE.md")
        .read_text()
        .startswith("Complete this task using available tools and your best judgment.")
    )
    assert composed.claude_md_hash is not None


def test_settings_for_agent_teams_and_string_mcp(tiers: TiersDir, tmp_path: Path) -> None:
    subtest = next(s for s in (find_subtest(tiers, "T4", f"{i:02d}") for i in range(1, 15)) if s.agent_teams)
    subtest = subtest.model_copy(update={"resources": {**subtest.resources, "mcp_servers": ["time"]}})
    workspace = tmp_path / "ws"
    workspace.mkdir()
    compose_workspace(workspace, tiers, "T4", subtest)
    settings = json.loads((workspace / ".claude" / "settings.json").read_text())
    assert settings["env"] == {"CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS": "1"}
    assert settings["mcpServers"]["time"]["args"] == ["-y", "@modelcontextprotocol/servers/time"]


def test_suffix_singular_and_plural(tiers: TiersDir) -> None:
    one = build_resource_suffix({"agents": {"levels": [0]}}, tiers.shared_dir, variant="legacy")
    assert one.startswith(
        "Use the following sub-agent to solve this task:\n\n- chief-architect\n\n## Cleanup"
    )
    tools = build_resource_suffix({"tools": {"names": ["Read", "Bash"]}}, tiers.shared_dir)
    assert tools.startswith("Maximize usage of the following tools to complete this task:\n\n- Bash\n- Read")
    assert "## Test Environment Constraints" in tools
