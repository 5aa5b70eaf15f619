"""The twin refuses a stack whose parameters break the template's Rules, as CloudFormation does before creating it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from contract.project import PROJECT_ROOT
from contract.template import read_template
from emulator.stack import deploy_stack
from emulator.stack_spec import StackDeployError
from emulator.template_rules import TemplateRuleError, check_rules, parameter_values

TEMPLATE = read_template(PROJECT_ROOT / "template.yaml")
PSEUDO = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}
NETWORK = {"SubnetIds": "subnet-1,subnet-2", "SecurityGroupIds": "sg-1"}


def _check(**overrides: str) -> None:
    check_rules(TEMPLATE, parameter_values(TEMPLATE, {**NETWORK, **overrides}), PSEUDO)


def test_a_prod_stack_with_auto_approval_is_refused_with_the_rules_description() -> None:
    with pytest.raises(TemplateRuleError, match="prod needs ApprovalMode=manual: an independent reviewer"):
        _check(Environment="prod", ApprovalMode="auto", EndpointInstanceCount="2")


def test_a_prod_stack_with_one_endpoint_instance_is_refused() -> None:
    with pytest.raises(TemplateRuleError, match="prod endpoints need EndpointInstanceCount >= 2"):
        _check(Environment="prod", ApprovalMode="manual")


def test_the_rules_hold_for_dev_auto_and_for_prod_as_samconfig_deploys_it() -> None:
    _check(Environment="dev", ApprovalMode="auto")
    _check(Environment="prod", ApprovalMode="manual", EndpointInstanceCount="2")


@pytest.mark.parametrize(
    ("assertion", "holds"),
    [
        ({"Fn::Contains": [["a", "b"], {"Ref": "Kind"}]}, True),
        ({"Fn::EachMemberEquals": [{"Ref": "Zones"}, "x"]}, False),
        ({"Fn::EachMemberIn": [{"Ref": "Zones"}, ["x", "y"]]}, True),
        ({"Fn::And": [{"Fn::Equals": [{"Ref": "Kind"}, "a"]}, {"Fn::Not": [{"Fn::Equals": ["1", "2"]}]}]}, True),
        ({"Fn::Or": [{"Fn::Equals": [{"Ref": "AWS::Region"}, "eu-west-1"]}, {"Fn::Equals": ["1", "2"]}]}, False),
    ],
)
def test_the_rule_functions_evaluate_as_cloudformation_defines_them(assertion: dict[str, Any], holds: bool) -> None:
    template = {
        "Parameters": {"Kind": {"Type": "String", "Default": "a"}, "Zones": {"Type": "CommaDelimitedList"}},
        "Rules": {"R": {"Assertions": [{"Assert": assertion, "AssertDescription": "refused by R"}]}},
    }
    values = parameter_values(template, {"Zones": "x, y"})
    if holds:
        check_rules(template, values, PSEUDO)
    else:
        with pytest.raises(TemplateRuleError, match="refused by R"):
            check_rules(template, values, PSEUDO)


def test_a_rule_reading_the_accounts_resources_is_refused_not_passed() -> None:
    template = {
        "Rules": {
            "R": {"Assertions": [{"Assert": {"Fn::Not": [{"Fn::Equals": [{"Fn::RefAll": "AWS::EC2::VPC::Id"}, []]}]}}]}
        }
    }
    with pytest.raises(TemplateRuleError, match="R uses Fn::RefAll, which reads the account's resources"):
        check_rules(template, {}, PSEUDO)


def test_the_twin_refuses_to_deploy_a_prod_stack_with_auto_approval(tmp_path: Path) -> None:
    with (
        mock_aws(),
        pytest.raises(StackDeployError, match="CloudFormation refuses stack mlops-local's parameters: prod needs"),
    ):
        deploy_stack(
            PROJECT_ROOT / "template.yaml",
            {**NETWORK, "Environment": "prod", "ApprovalMode": "auto", "EndpointInstanceCount": "2"},
        )
