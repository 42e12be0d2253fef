"""Tests for experiment.tiers: locating the tier definitions and reading subtests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from experiment.errors import FormatError, RepairBlocked
from experiment.tiers import (
    TiersDir,
    clear_cache,
    find_subtest,
    find_tiers_dir,
    list_subtests,
    load_tier_config,
    subtest_ids,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REPO = FIXTURES / "scylla-tiers"  # a trimmed ProjectScylla checkout: tests/{claude-code,fixtures}
SHARED = REPO / "tests" / "claude-code" / "shared"
TEST_001 = REPO / "tests" / "fixtures" / "tests" / "test-001"

EXPECTED_COUNTS = {"T0": 24, "T1": 10, "T2": 15, "T3": 41, "T4": 14, "T5": 15, "T6": 1}


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def _tree_with_tests_at_depth(tmp_path: Path, depth: int) -> Path:
    """``root/tests`` → fixture's tests/, and an experiment dir ``depth`` levels below root."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "tests").symlink_to(REPO / "tests", target_is_directory=True)
    exp = root
    for i in range(depth):
        exp = exp / f"level{i}"
    exp.mkdir(parents=True, exist_ok=True)
    return exp


@pytest.mark.parametrize("depth", [0, 1, 2, 3, 4])
def test_auto_detect_within_four_ancestors(tmp_path: Path, depth: int) -> None:
    exp = _tree_with_tests_at_depth(tmp_path, depth)
    tiers = find_tiers_dir(exp)
    root = tmp_path / "root"
    assert tiers.test_dir == root / "tests" / "fixtures" / "tests" / "test-001"
    assert tiers.shared_dir.resolve() == SHARED.resolve()
    assert tiers.subtests_dir == tiers.shared_dir / "subtests"


def test_auto_detect_stops_after_five_dirs(tmp_path: Path) -> None:
    exp = _tree_with_tests_at_depth(tmp_path, 5)
    with pytest.raises(RepairBlocked) as info:
        find_tiers_dir(exp)
    message = str(info.value)
    assert message.startswith("Could not auto-detect tiers directory")
    assert "--tiers-dir DIR" in message
    assert "\n" not in message
    # The 5 searched dirs are named: the experiment and its 4 nearest ancestors, not root itself.
    assert str(exp / "tests" / "fixtures" / "tests") in message
    assert str(tmp_path / "root" / "level0" / "tests" / "fixtures" / "tests") in message
    assert str(tmp_path / "root" / "tests" / "fixtures" / "tests") not in message


def test_auto_detect_takes_alphabetically_first_test_dir(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "tests" / "fixtures" / "tests" / "test-002").mkdir(parents=True)
    (root / "tests" / "fixtures" / "tests" / "test-001").mkdir(parents=True)
    (root / "tests" / "fixtures" / "tests" / "other").mkdir(parents=True)
    (root / "tests" / "claude-code").mkdir(parents=True)
    (root / "tests" / "claude-code" / "shared").symlink_to(SHARED, target_is_directory=True)
    exp = root / "exp"
    exp.mkdir()
    tiers = find_tiers_dir(exp)
    assert tiers.test_dir is not None and tiers.test_dir.name == "test-001"


def test_auto_detect_ignores_fixture_tests_without_test_dirs(tmp_path: Path) -> None:
    (tmp_path / "tests" / "fixtures" / "tests" / "not-a-test").mkdir(parents=True)
    with pytest.raises(RepairBlocked, match="^Could not auto-detect tiers directory"):
        find_tiers_dir(tmp_path)


def test_auto_detect_stops_at_filesystem_root() -> None:
    with pytest.raises(RepairBlocked, match="^Could not auto-detect tiers directory"):
        find_tiers_dir(Path("/"))


@pytest.mark.parametrize(
    "explicit",
    [
        TEST_001,  # a test dir
        REPO,  # a repo root containing tests/claude-code/shared
        REPO / "tests",  # the tests/ dir
        SHARED,  # the shared dir itself
        REPO / "tests" / "claude-code",  # lenient: claude-code/
        REPO / "tests" / "fixtures" / "tests",  # lenient: the dir holding test-*
    ],
)
def test_explicit_forms(explicit: Path, tmp_path: Path) -> None:
    tiers = find_tiers_dir(tmp_path, explicit)
    assert tiers.shared_dir.resolve() == SHARED.resolve()
    assert tiers.test_dir is not None and tiers.test_dir.resolve() == TEST_001.resolve()


def test_explicit_shared_dir_without_fixture_tests(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "subtests").symlink_to(SHARED / "subtests", target_is_directory=True)
    tiers = find_tiers_dir(tmp_path, shared)
    assert tiers == TiersDir(test_dir=None, shared_dir=shared)
    assert len(list_subtests(tiers, "T6")) == 1


@pytest.mark.parametrize("bad", ["nowhere", "empty"])
def test_explicit_bad_path(tmp_path: Path, bad: str) -> None:
    path = tmp_path / bad
    if bad == "empty":
        path.mkdir()
    with pytest.raises(RepairBlocked) as info:
        find_tiers_dir(tmp_path, path)
    assert str(path) in str(info.value)
    assert "tests/claude-code/shared" in str(info.value)


def test_every_fixture_yaml_parses() -> None:
    files = sorted(REPO.rglob("*.yaml")) + sorted(REPO.rglob("*.yml"))
    assert len(files) >= 120
    for path in files:
        yaml.safe_load(path.read_text(encoding="utf-8"))
    tiers = TiersDir(test_dir=TEST_001, shared_dir=SHARED)
    total = 0
    for tier in EXPECTED_COUNTS:
        for subtest in list_subtests(tiers, tier):
            subtest.spec  # noqa: B018  (typed validation of resources)
            total += 1
    assert total == sum(EXPECTED_COUNTS.values()) == len(list(SHARED.glob("subtests/t*/*.yaml")))


@pytest.mark.parametrize(("tier", "count"), EXPECTED_COUNTS.items())
def test_subtest_counts_and_ids(tier: str, count: int) -> None:
    tiers = TiersDir(test_dir=TEST_001, shared_dir=SHARED)
    subtests = list_subtests(tiers, tier)
    assert len(subtests) == count
    first = 0 if tier == "T0" else 1
    assert [s.id for s in subtests] == [f"{i:02d}" for i in range(first, first + count)]
    assert all(s.tier == tier for s in subtests)
    assert list_subtests(tiers, tier.lower()) == subtests
    assert subtest_ids(tiers, tier) == [s.id for s in subtests]


def test_subtest_fields_mirror_original_provider() -> None:
    tiers = TiersDir(test_dir=TEST_001, shared_dir=SHARED)
    t0 = list_subtests(tiers, "T0")
    assert t0[0].name == "Empty System Prompt"
    assert t0[0].system_prompt_mode == "none"
    assert t0[0].extends_previous is False
    assert t0[0].resources == {"claude_md": {"blocks": []}}
    assert t0[0].fixture_config_path == "tests/claude-code/shared/subtests/t0/00-empty.yaml"
    # Root-level tools are folded into resources.
    t2 = find_subtest(tiers, "T2", "01")
    assert t2 is not None
    assert t2.resources == {"tools": {"enabled": ["Read", "Write", "Edit", "Glob", "Grep"]}}
    assert t2.system_prompt_mode == "custom"
    t5 = find_subtest(tiers, "T5", "01")
    assert t5 is not None and t5.inherit_best_from == ["T0"] and t5.resources == {}
    t6 = find_subtest(tiers, "T6", "01")
    assert t6 is not None
    spec = t6.spec
    assert spec.agents is not None and spec.agents.levels == [0, 1, 2, 3, 4, 5]
    assert spec.tools is not None and spec.tools.enabled == "all"
    assert spec.mcp_servers is not None and len(spec.mcp_servers) == 9
    assert sum(s.agent_teams for s in list_subtests(tiers, "T4")) == 7


def test_cache_returns_independent_copies() -> None:
    tiers = TiersDir(test_dir=TEST_001, shared_dir=SHARED)
    first = list_subtests(tiers, "T6")
    first[0].resources.clear()
    assert list_subtests(tiers, "T6")[0].resources
    found = find_subtest(tiers, "T6", "01")
    assert found is not None
    found.resources.clear()
    assert list_subtests(tiers, "T6")[0].resources


def test_only_two_digit_names_count_and_bad_yaml_is_format_error(tmp_path: Path) -> None:
    t1 = tmp_path / "subtests" / "t1"
    t1.mkdir(parents=True)
    (t1 / "01-a.yaml").write_text("name: A\n")
    (t1 / "x1-b.yaml").write_text("name: B\n")
    (t1 / "README.md").write_text("hi\n")
    tiers = TiersDir(test_dir=None, shared_dir=tmp_path)
    assert [s.id for s in list_subtests(tiers, "T1")] == ["01"]
    assert subtest_ids(tiers, "T1") == ["01"]
    assert list_subtests(tiers, "T2") == []
    (t1 / "02-bad.yaml").write_text("name: [unclosed\n")
    clear_cache()
    with pytest.raises(FormatError):
        subtest_ids(tiers, "T1")  # the ids a scan uses come from checked definitions too
    with pytest.raises(FormatError) as info:
        list_subtests(tiers, "T1")
    assert "02-bad.yaml" in str(info.value)


def test_load_tier_config() -> None:
    tiers = TiersDir(test_dir=TEST_001, shared_dir=SHARED)
    assert load_tier_config(tiers, "T0").tools_enabled is None
    t3 = load_tier_config(tiers, "T3")
    assert t3.tools_enabled is True and t3.delegation_enabled is True and t3.name == "Delegation"
    assert load_tier_config(tiers, "T9").tools_enabled is None
