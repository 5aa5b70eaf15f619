"""`mlops run --dataset`: a bundled data set's pipeline changes become the state machines its run deploys."""

from __future__ import annotations

import json

import pytest

from mlops.cli import _bundled_dataset_pipeline, main


def test_german_credit_runs_state_machines_exported_with_its_facet_and_gate() -> None:
    pipeline = _bundled_dataset_pipeline("german-credit")

    training = json.loads(pipeline["statemachines"]["training.asl.json"])
    defaults = training["States"]["ApplyInputDefaults"]["Parameters"]["defaults"]
    assert defaults["bias"] == {"facet_column": "sex_female", "sensitive_values": [1.0]}
    [rule] = training["States"]["QualityGate"]["Choices"]
    assert {"Variable": "$.report.Payload.metric_value", "NumericGreaterThanEquals": 0.7} in rule["And"]
    assert pipeline["config"].bias.facet_column == "sex_female"


def test_the_default_data_set_runs_the_committed_state_machines() -> None:
    assert _bundled_dataset_pipeline("breast-cancer") == {}
    assert _bundled_dataset_pipeline(None) == {}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--data", "my.csv", "--dataset", "german-credit"], "--data and --dataset both name the data"),
        (["run", "--drift", "--dataset", "german-credit"], "--drift runs on the default data set or --data"),
        (["run", "--dataset", "iris"], "invalid choice: 'iris'"),
    ],
)
def test_the_cli_refuses_a_dataset_it_cannot_run(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)

    assert exited.value.code == 2
    assert message in capsys.readouterr().err
