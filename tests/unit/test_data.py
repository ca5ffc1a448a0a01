"""Data versioning and schema checks; the pipeline is not tied to the demo table."""

import math
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from pipelines.config import DataConfig, ModelConfig
from pipelines.data import DataError, check_schema, data_version, load_versioned
from pipelines.demo_data import make_loans
from pipelines.task import CLASSIFICATION_TASK
from pipelines.train import fit
from tests.unit.models import config_for

DEMO = DataConfig(
    target="defaulted",
    numeric_features=["age", "income", "loan_amount", "credit_score", "debt_ratio"],
    categorical_features=["employment", "region", "purpose"],
)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return check_schema(make_loans(rows=2000), DEMO, CLASSIFICATION_TASK)


def test_same_data_same_version(table):
    assert data_version(table) == data_version(table.copy())
    assert data_version(table) == data_version(check_schema(make_loans(rows=2000), DEMO, CLASSIFICATION_TASK))


@pytest.mark.parametrize("column", ["age", "region", "defaulted"])
def test_any_changed_cell_changes_the_version(table, column):
    changed = table.copy()
    row = len(changed) - 1  # the last row: beyond any sample a partial digest would take
    changed.loc[row, column] = "west" if column == "region" and changed.loc[row, column] != "west" else (
        "east" if column == "region" else changed.loc[row, column] + 1)
    assert data_version(changed) != data_version(table)


def test_version_covers_rows_beyond_ten_thousand():
    big = check_schema(make_loans(rows=12_000), DEMO, CLASSIFICATION_TASK)
    changed = big.copy()
    changed.loc[11_500, "income"] += 0.01
    assert data_version(changed) != data_version(big)


def test_version_sees_column_renames(table):
    assert data_version(table.rename(columns={"age": "years"})) != data_version(table)


def test_missing_column(table):
    with pytest.raises(DataError, match=r"missing column\(s\) \['age'\]"):
        check_schema(table.drop(columns=["age"]), DEMO, CLASSIFICATION_TASK)


def test_wrong_type_names_column_and_value(table):
    bad = table.astype({"income": object})
    bad.loc[3, "income"] = "lots"
    with pytest.raises(DataError, match=r"column 'income' is listed as numeric.*'lots'"):
        check_schema(bad, DEMO, CLASSIFICATION_TASK)


def test_empty_table(table):
    with pytest.raises(DataError, match="empty"):
        check_schema(table.head(0), DEMO, CLASSIFICATION_TASK)


def test_all_null_column(table):
    bad = table.copy()
    bad["region"] = None
    with pytest.raises(DataError, match="column 'region' has no values"):
        check_schema(bad, DEMO, CLASSIFICATION_TASK)


def test_single_class_target(table):
    bad = table.copy()
    bad["defaulted"] = 1
    with pytest.raises(DataError, match="single class"):
        check_schema(bad, DEMO, CLASSIFICATION_TASK)


def test_null_target(table):
    bad = table.astype({"defaulted": float})
    bad.loc[0, "defaulted"] = np.nan
    with pytest.raises(DataError, match="null"):
        check_schema(bad, DEMO, CLASSIFICATION_TASK)


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_versioned(config_for(DEMO.model_copy(update={"source": str(tmp_path / "none.csv")})))
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        load_versioned(config_for(DEMO.model_copy(update={"source": str(tmp_path / "data.xlsx")})))


def test_another_table_works_by_config_alone(tmp_path):
    """The wine table: other columns, three classes, a categorical made from a numeric one."""
    wine = load_wine(as_frame=True).frame
    wine["color_band"] = pd.cut(wine["color_intensity"], 3, labels=["pale", "medium", "deep"]).astype(str)
    path = tmp_path / "wine.parquet"
    wine.to_parquet(path)
    config = DataConfig(source=str(path), target="target",
                        numeric_features=["alcohol", "malic_acid", "flavanoids", "proline", "hue"],
                        categorical_features=["color_band"], seed=3)
    data = load_versioned(config_for(config))
    assert data.source == str(path) and len(data.frame) == len(wine)
    _, holdout, metrics = fit(data.frame, config_for(config, ModelConfig(estimator="logistic_regression",
                                                                         params={"max_iter": 500})))
    assert metrics["accuracy"] > 0.8
    assert {"accuracy", "f1_macro", "roc_auc", "log_loss"} <= metrics.keys()
    assert len(holdout) == math.ceil(len(wine) * config.holdout_fraction)


def test_training_is_deterministic(table):
    first = fit(table, config_for(DEMO, ModelConfig(params={"n_estimators": 20})))[2]
    second = fit(table, config_for(DEMO, ModelConfig(params={"n_estimators": 20})))[2]
    assert first == second


def test_a_class_too_rare_to_split_is_a_clear_error(table):
    from pipelines.train import TrainError

    rare = table.copy()
    rare.loc[0, "defaulted"] = 7  # one row of a third class
    with pytest.raises(TrainError, match="cannot split 'defaulted'"):
        fit(rare, config_for(DEMO, ModelConfig(params={"n_estimators": 5})))


def test_a_file_over_the_stated_size_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "loans.csv"
    make_loans(rows=200).to_csv(path, index=False)
    config = DEMO.model_copy(update={"source": str(path), "max_file_bytes": path.stat().st_size - 1})
    monkeypatch.setattr(pd, "read_csv", lambda *a, **k: pytest.fail("read a file over the limit"))
    with pytest.raises(DataError, match=r"data.max_file_bytes: .*loans.csv is \d[\d,]* bytes, over the limit"):
        load_versioned(config_for(config))
    monkeypatch.undo()
    at_the_limit = load_versioned(config_for(config.model_copy(update={"max_file_bytes": path.stat().st_size})))
    assert len(at_the_limit.frame) == 200


def whole_table_digest(frame: pd.DataFrame) -> str:
    """The version as every registered model version so far was numbered: the whole table hashed at once."""
    import hashlib

    digest = hashlib.sha256(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def mixed_table(rows: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    numbers = rng.normal(size=rows)
    numbers[::13] = np.nan
    words = rng.choice(["north", "south", "east"], rows).astype(object)
    words[::11] = None
    return pd.DataFrame({
        "number": numbers, "count": rng.integers(0, 50, rows), "flag": rng.random(rows) > 0.5, "word": words,
        "label": pd.Categorical(rng.choice(["a", "b"], rows)), "text": pd.array(words, dtype="string"),
        "when": pd.date_range("2024-03-01", periods=rows, freq="min", tz="Europe/Paris"),
    })


@pytest.mark.parametrize("chunk_rows", [1, 7, 999, 1000, 5000])
def test_version_is_the_same_for_any_chunk_size(chunk_rows):
    frame = mixed_table()
    assert data_version(frame, chunk_rows=chunk_rows) == whole_table_digest(frame)


def test_existing_versions_keep_their_numbers(table):
    assert data_version(table) == whole_table_digest(table)
    # make_loans(rows=2000) checked against DEMO, as versioned before the version was hashed in chunks
    assert data_version(table) == "80c3b58864c81d3069945851a1779bb2093395e07aa93fef64b2c49defbdb2b8"


def test_version_hashes_a_bounded_number_of_rows_at_a_time(monkeypatch):
    frame, hashed = mixed_table(), []
    real = pd.util.hash_pandas_object

    def counting(rows, **kwargs):
        hashed.append(len(rows))
        return real(rows, **kwargs)

    monkeypatch.setattr(pd.util, "hash_pandas_object", counting)
    data_version(frame, chunk_rows=300)
    assert hashed == [300, 300, 300, 100]


def test_columns_already_typed_are_not_copied(table):
    """All of the table kept, nothing to convert: the checked table shares the read columns' memory."""
    checked = check_schema(table, DEMO, CLASSIFICATION_TASK)
    for column in [*DEMO.numeric_features, DEMO.target]:
        assert np.shares_memory(checked[column].to_numpy(), table[column].to_numpy()), column


def test_kept_columns_are_copied_when_others_are_dropped(table):
    """Columns dropped: the kept ones are copied, so the dropped ones can be freed with the read table."""
    wider = table.assign(unused=1.0)
    checked = check_schema(wider, DEMO, CLASSIFICATION_TASK)
    assert list(checked.columns) == DEMO.columns
    for column in [*DEMO.numeric_features, DEMO.target]:
        assert not np.shares_memory(checked[column].to_numpy(), wider[column].to_numpy()), column


def test_the_check_converts_without_changing_its_input():
    raw = make_loans(rows=300)
    raw.index = raw.index * 10  # a reader's own row labels
    before = raw.copy()
    checked = check_schema(raw, DEMO, CLASSIFICATION_TASK)
    pd.testing.assert_frame_equal(raw, before)
    assert checked.index.equals(pd.RangeIndex(300))
    assert checked["age"].dtype == "float64" and raw["age"].dtype == "int64"
    assert checked["region"].tolist() == raw["region"].tolist()


def test_a_tables_fault_names_the_table(tmp_path):
    path = tmp_path / "loans.csv"
    make_loans().drop(columns=[DEMO.target]).to_csv(path, index=False)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: missing column\(s\) \['{DEMO.target}'\]"):
        load_versioned(config_for(DEMO.model_copy(update={"source": str(path)})))
