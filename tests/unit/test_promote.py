"""pipelines.promote without a server: the artifact digest, and the refusals that come before any connection."""

from __future__ import annotations

import pytest

from pipelines.config import DEFAULT_CONFIG_PATH, load_config
from pipelines.promote import PromotionError, copied_version_tags, promote, tree_digest


def test_the_digest_changes_with_any_byte_or_name_and_nothing_else(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for root in (first, second):
        (root / "sub").mkdir(parents=True)
        (root / "MLmodel").write_text("signature: x\n")
        (root / "sub" / "model.skops").write_bytes(b"\x00\x01")
    assert tree_digest(first) == tree_digest(second) and tree_digest(first).startswith("sha256:")
    (second / "sub" / "model.skops").write_bytes(b"\x00\x02")
    assert tree_digest(first) != tree_digest(second)
    (second / "sub" / "model.skops").write_bytes(b"\x00\x01")
    (second / "sub" / "model.skops").rename(second / "sub" / "other.skops")
    assert tree_digest(first) != tree_digest(second)


def test_the_same_registry_twice_is_refused_without_showing_its_password():
    config = load_config(DEFAULT_CONFIG_PATH)
    with pytest.raises(PromotionError, match="same registry") as raised:
        promote(config, "1", source_uri="http://reader:s3cret@mlflow:5000", target_uri="http://mlflow:5000/")
    assert "s3cret" not in str(raised.value)


def test_the_copy_keeps_facts_about_the_model_but_not_the_sources_verdicts_or_release_pointers():
    source = {"data_version": "abc", "serving_runtime": "onnxruntime", "validation": "passed",
              "serving_image.mlops": "mlops-serving:v3-aaa", "serving_image.staging": "staging-serving:v3-aaa"}
    assert copied_version_tags(source) == {"data_version": "abc", "serving_runtime": "onnxruntime"}
