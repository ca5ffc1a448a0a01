"""The gate compares the candidate's code digest (a registry tag, writable by whoever writes the registry) with
this checkout's team code (the reviewed code): a mismatch fails the gate, and no waiver passes it."""

from __future__ import annotations

from pathlib import Path

from pipelines.config import DataConfig, PipelineConfig
from pipelines.registry import ResolvedVersion
from pipelines.team_code import code_sha256
from pipelines.validate import reviewed_code

DATA = DataConfig(target="y", numeric_features=["x"])


def checkout(tmp_path: Path, code: str | None) -> PipelineConfig:
    """A checkout's config, with one team package holding `code` (none when `code` is None)."""
    if code is None:
        return PipelineConfig(model_name="m", data=DATA)
    package = tmp_path / "gate_code_team"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text(code)
    return PipelineConfig(model_name="m", data=DATA, code_paths=[package])


def candidate(config: PipelineConfig, digest: str) -> ResolvedVersion:
    return ResolvedVersion(name="m", version="2", run_id="r", data_version="d", git_sha="g", trained_with=config,
                           code_sha256=digest)


def test_the_candidates_code_must_be_this_checkouts(tmp_path):
    config = checkout(tmp_path, "A = 1\n")
    trained = code_sha256(config.code_folders)
    check = reviewed_code(config, candidate(config, trained))
    assert check.name == "team code = this checkout's" and check.passed
    checkout(tmp_path, "A = 2\n")  # the checkout moved on (or the tag was rewritten)
    check = reviewed_code(config, candidate(config, trained))
    assert not check.passed and check.candidate == trained[:12]


def test_no_team_code_on_either_side_passes_and_one_side_fails(tmp_path):
    bare = checkout(tmp_path, None)
    assert reviewed_code(bare, candidate(bare, "")).passed
    assert not reviewed_code(bare, candidate(bare, "ab" * 32)).passed
    with_code = checkout(tmp_path, "A = 1\n")
    check = reviewed_code(with_code, candidate(with_code, ""))
    assert not check.passed and check.candidate == "none"
