"""`mlops check`: each check passes on the project, and the runner reports failures, crashes and unknown names."""

from __future__ import annotations

import py_compile
from pathlib import Path

import pytest

from contract.template import function_handlers
from mlops import checks

# ---------------------------------------------------------------- each check on the project


def test_cfn_lint_check_passes() -> None:
    checks.check_cfn_lint()


def test_asl_check_validates_every_exported_definition() -> None:
    assert checks.check_asl() == "3 definitions valid: deploy.asl.json, monitoring.asl.json, training.asl.json"


def test_asl_policy_check_passes() -> None:
    checks.check_asl_policy()


def test_iam_policy_check_passes() -> None:
    checks.check_iam_policy()


def test_export_fresh_check_passes() -> None:
    assert "up to date" in checks.check_export_fresh()


def test_sam_validate_check_passes() -> None:
    assert "valid SAM Template" in checks.check_sam_validate()


def test_checkov_check_passes_with_the_project_checks() -> None:
    summary = checks.check_checkov()

    assert summary.startswith("Passed checks:")
    assert "Failed checks: 0" in summary


def test_unknown_placeholder_fails_the_asl_check_naming_it() -> None:
    with pytest.raises(checks.CheckFailed, match=r"placeholders not in docs/interfaces\.md: BucketName, Region"):
        checks.fill_placeholders('{"a": "${Region}", "b": "${BucketName}", "c": "${Partition}"}')


def test_filled_placeholders_take_their_representative_values() -> None:
    assert (
        checks.fill_placeholders("arn:${Partition}:states:::${EndpointName}") == "arn:aws:states:::mlops-dev-endpoint"
    )


def test_representative_values_cover_the_contract() -> None:
    from contract.placeholders import PLACEHOLDER_NAMES, REPRESENTATIVE_PLACEHOLDER_VALUES

    assert set(REPRESENTATIVE_PLACEHOLDER_VALUES) == set(PLACEHOLDER_NAMES)


def test_both_asl_validators_report_a_broken_definition() -> None:
    definition = {"StartAt": "First", "States": {"First": {"Type": "Bogus", "End": True}}}

    problems = checks.asl_problems(definition)

    assert any(problem.startswith("statelint: ") and "Bogus" in problem for problem in problems)
    assert any(problem.startswith("cfn-lint: ") and "E3601" in problem for problem in problems)


def test_a_valid_definition_has_no_asl_problems() -> None:
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}

    assert checks.asl_problems(definition) == []


def test_checkov_skips_need_a_written_reason() -> None:
    template = {
        "Resources": {
            "Explained": {"Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_1", "comment": "because"}]}}},
            "Unexplained": {"Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_2", "comment": " "}]}}},
            "NoMetadata": {},
        }
    }

    problems = checks.unexplained_checkov_skips(template)

    assert len(problems) == 1
    assert problems[0].startswith("Unexplained: checkov skip")


def test_package_sizes_measure_each_function_folder(tmp_path: Path) -> None:
    (tmp_path / "FunctionA").mkdir()
    (tmp_path / "FunctionA" / "app.py").write_text("x = 1\n" * 1000)
    (tmp_path / "template.yaml").write_text("not a package")

    sizes = checks.package_sizes(tmp_path)

    assert list(sizes) == ["FunctionA"]
    zipped, unzipped = sizes["FunctionA"]
    assert unzipped == 6000
    assert 0 < zipped < unzipped


def test_function_handlers_read_every_function_of_the_template() -> None:
    handlers = function_handlers()

    assert handlers["RetrainOnDriftFunction"] == "retrain_on_drift.handler"
    assert handlers["MlCodePublisherFunction"] == "publisher.handler"
    assert handlers["MonitoringWindowFunction"] == "monitoring_window.handler"
    assert handlers["ApprovalTagsFunction"] == "approval_tags.handler"
    assert len(handlers) == 13


def _package(build_dir: Path, logical_id: str, source: str) -> None:
    (build_dir / logical_id).mkdir(parents=True)
    (build_dir / logical_id / "app.py").write_text(source)


def test_a_package_that_imports_its_handler_with_the_runtimes_boto3_passes(tmp_path: Path) -> None:
    _package(tmp_path, "Good", "import boto3\n\ndef handler(event, context):\n    return boto3.__name__\n")

    assert checks.handler_import_problems(tmp_path, {"Good": "app.handler"}) == {}


def test_a_package_leaning_on_the_build_machines_packages_is_named(tmp_path: Path) -> None:
    # pydantic is installed here but neither in the runtime nor in this package, as when a build drops a dependency.
    _package(tmp_path, "Missing", "import pydantic\n\ndef handler(event, context):\n    return None\n")
    _package(tmp_path, "NotAFunction", "handler = 1\n")

    problems = checks.handler_import_problems(
        tmp_path, {"Missing": "app.handler", "NotAFunction": "app.handler", "Unbuilt": "app.handler"}
    )

    assert "No module named 'pydantic'" in problems["Missing"]
    assert "app.handler is not a function" in problems["NotAFunction"]
    assert problems["Unbuilt"].startswith("sam build left no package")


def test_modules_without_bytecode_are_listed(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    for name in ("app.py", "lib/compiled.py", "lib/plain.py"):
        (tmp_path / name).write_text("x = 1\n")
    for name in ("app.py", "lib/compiled.py"):
        py_compile.compile(str(tmp_path / name), invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)

    assert checks.modules_without_bytecode(tmp_path) == ["lib/plain.py"]


# ---------------------------------------------------------------- the runner


def _fake_checks(monkeypatch: pytest.MonkeyPatch, *fakes: checks.Check) -> None:
    monkeypatch.setattr(checks, "CHECKS", fakes)


def _passing() -> str:
    return "all good"


def _failing() -> str:
    raise checks.CheckFailed("line 3: bad value")


def _crashing() -> str:
    raise RuntimeError("the tool blew up")


def test_all_passing_checks_exit_zero(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _fake_checks(monkeypatch, checks.Check("one", "first", _passing), checks.Check("two", "second", _passing))

    assert checks.check_command(only=[], list_only=False) == 0
    output = capsys.readouterr().out
    assert "PASS one (" in output
    assert "    all good" in output
    assert "all 2 checks passed" in output


def test_a_failing_check_exits_non_zero_with_its_output_and_the_rest_still_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_checks(
        monkeypatch,
        checks.Check("bad", "fails", _failing),
        checks.Check("crash", "raises", _crashing),
        checks.Check("good", "passes", _passing),
    )

    assert checks.check_command(only=[], list_only=False) == 1
    output = capsys.readouterr().out
    assert "FAIL bad (" in output
    assert "    line 3: bad value" in output
    assert "FAIL crash (" in output
    assert "RuntimeError: the tool blew up" in output
    assert "PASS good (" in output
    assert "2 of 3 checks failed: bad, crash" in output


def test_only_runs_the_named_checks(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _fake_checks(monkeypatch, checks.Check("bad", "fails", _failing), checks.Check("good", "passes", _passing))

    assert checks.check_command(only=["good"], list_only=False) == 0
    assert "bad" not in capsys.readouterr().out


def test_an_unknown_check_name_is_an_error_listing_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert checks.check_command(only=["cfn-lnt"], list_only=False) == 2
    assert "unknown check(s): cfn-lnt; known checks: cfn-lint, asl," in capsys.readouterr().err


def test_list_names_every_check_without_running_any(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_checks(monkeypatch, checks.Check("bad", "fails when run", _failing))

    assert checks.check_command(only=[], list_only=True) == 0
    assert capsys.readouterr().out.split() == ["bad", "fails", "when", "run"]


def test_the_project_has_the_documented_checks() -> None:
    assert [check.name for check in checks.CHECKS] == [
        "cfn-lint",
        "asl",
        "asl-policy",
        "iam-policy",
        "export-fresh",
        "sam-validate",
        "sam-build",
        "checkov",
        "job-environment",
        "ml-python",
    ]


def test_a_missing_tool_is_a_failure_saying_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(checks.sys, "executable", str(tmp_path / "python"))

    with pytest.raises(checks.CheckFailed, match=r"sam not found at .*make install"):
        checks.check_sam_validate()
