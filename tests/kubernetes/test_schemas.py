"""Every declared manifest validates against the OpenAPI schemas of each claimed Kubernetes version.

kubernetes-validate ships the schemas, so this runs offline. Strict mode refuses fields the schema does
not know; a kind without a schema there (its "warning") fails the test too.
"""

from __future__ import annotations

import kubernetes_validate
import pytest
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

from tests.kubernetes.manifests import KUBERNETES_VERSIONS, Manifest, named


def _errors(found: list[Manifest], version: str) -> list[str]:
    errors = []
    for manifest in found:
        where = f"{manifest['kind']}/{manifest['metadata']['name']}"
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except ValidationError as exc:
            errors.append(f"{where} on {version}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except SchemaNotFoundError as exc:
            errors.append(f"{where} on {version}: {exc.message}")
    return errors


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_validates_strictly(version: str, small: list[Manifest], full: list[Manifest],
                                           two_models: list[Manifest]):
    assert _errors(small + full + two_models, version) == []


def test_an_unknown_field_or_kind_fails_the_check(small: list[Manifest]):
    deployment = named(small, "Deployment", "serving")
    typo = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    errors = _errors([typo, unknown], KUBERNETES_VERSIONS[0])
    assert len(errors) == 2
    assert "replica" in errors[0] and "Widget" in errors[1]
