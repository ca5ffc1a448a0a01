"""The one monitoring policy: its bounds, unknown keys, the JSON the stack passes, and the pipeline config's use."""

from __future__ import annotations

import json

import pytest
import yaml

from services.monitoring.policy import (
    LOCAL_ONLY_KEYS,
    MonitoringPolicy,
    PolicyError,
    checked_policy,
    policy_from_json,
)

NOT_DEFAULT = {"experiment": "loans-monitoring", "min_rows": 50, "drift_share_threshold": 0.5, "window_rows": 500,
               "window_hours": 1.5, "max_sample_rows": 2000, "on_drift": "none", "cooldown_minutes": 0.0,
               "interval_minutes": 0.5, "min_labeled_rows": 10, "max_missing_share_increase": 0.25,
               "log_retention_days": 7}


def test_every_setting_is_covered_here():
    assert set(NOT_DEFAULT) == set(MonitoringPolicy.model_fields)
    assert all(NOT_DEFAULT[key] != field.default for key, field in MonitoringPolicy.model_fields.items())


@pytest.mark.parametrize(("key", "value"), [
    ("min_rows", 0), ("drift_share_threshold", 0), ("drift_share_threshold", 1.5), ("window_rows", 0),
    ("window_hours", 0), ("max_sample_rows", 999), ("on_drift", "page-me"), ("cooldown_minutes", -1),
    ("interval_minutes", 0), ("interval_minutes", 24 * 60 + 1), ("min_labeled_rows", 0),
    ("max_missing_share_increase", 0), ("max_missing_share_increase", 1.01), ("log_retention_days", 0),
    ("experiment", ""), ("cooldown_minutes", float("inf")), ("min_rows", "many"),
])
def test_a_value_out_of_bounds_is_refused_naming_its_key(key, value):
    with pytest.raises(PolicyError, match=rf"^monitoring\.{key}: .*\(got {value!r}\)"):
        checked_policy({key: value})


def test_an_unknown_key_is_refused_naming_it_and_the_known_ones():
    with pytest.raises(PolicyError, match=r"^monitoring\.drift_threshold: unknown key; the settings are .*"
                                          r"drift_share_threshold"):
        checked_policy({"drift_threshold": 0.2})


def test_the_local_alert_is_left_out_of_the_policy():
    assert checked_policy({"alert": {"webhook_url_file": "/x"}, "min_rows": 5}).min_rows == 5


def test_json_round_trip_keeps_every_setting():
    policy = checked_policy(NOT_DEFAULT)
    assert json.loads(policy.to_json()) == NOT_DEFAULT
    assert policy_from_json(policy.to_json()) == policy


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "not a JSON object of monitoring settings"),
    ("[1, 2]", "monitoring: Input should be an object"),
    ('{"min_rows": 0}', r"monitoring\.min_rows: Input should be greater than or equal to 1 \(got 0\)"),
    ('{"min_rows": 10, "treshold": 1}', r"monitoring\.treshold: unknown key"),
])
def test_bad_json_is_refused_saying_what_is_wrong(text, message):
    with pytest.raises(PolicyError, match=message):
        policy_from_json(text)


def test_an_override_is_checked_again_and_none_keeps_the_value():
    policy = checked_policy({"window_rows": 300})
    assert policy.overridden(window_rows=None, on_drift="none") == checked_policy({"window_rows": 300,
                                                                                   "on_drift": "none"})
    with pytest.raises(PolicyError, match=r"monitoring\.window_rows"):
        policy.overridden(window_rows=0)


def test_the_pipeline_config_section_is_the_policy(tmp_path):
    from pipelines.config import ConfigError, MonitoringConfig, load_config

    # No field or default of its own beyond the local alert: one set of defaults and bounds.
    assert set(MonitoringConfig.__annotations__) == LOCAL_ONLY_KEYS
    assert issubclass(MonitoringConfig, MonitoringPolicy)
    assert MonitoringConfig().to_json() == MonitoringPolicy().to_json()
    raw = {"model_name": "loans", "data": {"target": "y", "numeric_features": ["x"]},
           "monitoring": {"drift_share_threshold": 1.5}}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"monitoring\.drift_share_threshold: Input should be less than or equal "
                                          r"to 1 \(got 1\.5\)"):
        load_config(path)
