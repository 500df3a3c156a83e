"""The policy rules, pure: names, matching by every name a tool answers to, merging, updates."""

from __future__ import annotations

import pytest
from formation.mcp.v1 import policies_pb2

from formation_mcp.errors import InvalidArgument
from formation_mcp.policies import rules
from formation_mcp.policies.rules import ToolFacts

SHIP = ToolFacts.of("pack.ship", ("form_pack_ship", "pack_ship"), read_only=False)
LIST = ToolFacts.of("vm.list", ("vm_list",), read_only=True)


def policy(**fields: object) -> policies_pb2.Policy:
    return policies_pb2.Policy(name="accounts/a/policy", **fields)  # type: ignore[arg-type]


def test_account_and_role_policy_names_parse_to_their_subject() -> None:
    assert rules.parse_policy_name("accounts/abc/policy") == "accounts/abc"
    assert rules.parse_policy_name("roles/viewer/policy") == "roles/viewer"


@pytest.mark.parametrize(
    "name", ["accounts/abc", "roles/nobody/policy", "accounts//policy", "accounts/a/b/policy", ""]
)
def test_other_names_are_invalid(name: str) -> None:
    with pytest.raises(InvalidArgument):
        rules.parse_policy_name(name)


@pytest.mark.parametrize(
    "pattern", ["pack.ship", "form_pack_ship", "pack_ship", "PACK.Ship", "pack.*", "form_*", "*"]
)
def test_a_pattern_naming_any_name_of_a_tool_matches_it(pattern: str) -> None:
    assert rules.matches(pattern, SHIP)


@pytest.mark.parametrize("pattern", ["pack.build", "vm.*", "pack.ship.x", "ship"])
def test_a_pattern_naming_another_tool_does_not_match(pattern: str) -> None:
    assert not rules.matches(pattern, SHIP)


def test_deny_wins_over_allow() -> None:
    refusal = rules.refusal(policy(allow_tools=["pack.*"], deny_tools=["form_pack_ship"]), SHIP)
    assert refusal is not None and refusal.reason == "POLICY_DENIED"
    assert refusal.metadata["rule"] == "deny_tools"
    assert refusal.metadata["pattern"] == "form_pack_ship"


def test_a_tool_outside_the_allow_list_is_refused() -> None:
    refusal = rules.refusal(policy(allow_tools=["vm.*"]), SHIP)
    assert refusal is not None and refusal.metadata["rule"] == "allow_tools"
    assert rules.refusal(policy(allow_tools=["vm.*"]), LIST) is None


def test_read_only_lets_only_read_only_tools_through() -> None:
    refusal = rules.refusal(policy(read_only=True), SHIP)
    assert refusal is not None and refusal.metadata["rule"] == "read_only"
    assert rules.refusal(policy(read_only=True), LIST) is None


def test_an_empty_policy_allows_everything() -> None:
    assert rules.refusal(policy(), SHIP) is None


def test_the_account_sets_what_it_sets_and_roles_fill_the_rest() -> None:
    role = policies_pb2.Policy(
        name="roles/user/policy", deny_tools=["vm.delete"], max_instances=5, read_only=True
    )
    own = policy(deny_tools=["pack.build"], max_instances=10, read_only=False)
    merged = rules.merge("accounts/a/policy", [role], own)
    assert list(merged.deny_tools) == ["vm.delete", "pack.build"]
    assert merged.max_instances == 10 and merged.read_only is False


def test_of_several_roles_the_strictest_limit_applies() -> None:
    first = policies_pb2.Policy(name="roles/user/policy", max_vcpus=8, max_instances=2)
    second = policies_pb2.Policy(name="roles/viewer/policy", max_vcpus=4)
    merged = rules.merge("accounts/a/policy", [first, second], None)
    assert (merged.max_vcpus, merged.max_instances) == (4, 2)
    assert not merged.HasField("max_disk_gb")


def test_an_update_changes_only_the_masked_fields_and_clears_unset_ones() -> None:
    current = policy(deny_tools=["vm.delete"], max_instances=3, max_vcpus=4)
    given = policy(deny_tools=["pack.*"])
    updated = rules.apply_update(current, given, ["deny_tools", "max_instances"])
    assert list(updated.deny_tools) == ["pack.*"]
    assert not updated.HasField("max_instances") and updated.max_vcpus == 4


def test_an_unknown_mask_path_is_invalid() -> None:
    with pytest.raises(InvalidArgument) as caught:
        rules.update_paths(["deny_tools", "owner"])
    assert caught.value.metadata["field"] == "update_mask"


@pytest.mark.parametrize("pattern", ["vm .delete", "vm.*.x", "", "*vm", "a" * 200])
def test_malformed_patterns_are_invalid(pattern: str) -> None:
    with pytest.raises(InvalidArgument):
        rules.check_policy(policy(deny_tools=[pattern]), ["deny_tools"])


def test_a_negative_quota_is_invalid() -> None:
    with pytest.raises(InvalidArgument):
        rules.check_policy(policy(max_instances=-1), ["max_instances"])


def test_the_tightest_rate_limit_matching_a_tool_applies() -> None:
    limits = policy(tool_calls_per_minute={"pack.*": 10, "form_pack_ship": 2, "vm.*": 1})
    assert rules.calls_per_minute(limits, SHIP) == ("form_pack_ship", 2)
    assert rules.calls_per_minute(policy(), SHIP) is None
