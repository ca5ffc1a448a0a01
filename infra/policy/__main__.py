"""The policy pack: `pulumi preview --policy-pack infra/policy` (see policies.py for the rules).

A stack that publishes on 0.0.0.0 on purpose (config `exposePorts`) allows it here too:
`--policy-pack-config` with {"no-public-ports": {"allowPublicPorts": true}}.
"""

from policies import POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name="mlops-platform-docker",
    description="Containers publish on loopback, run as non-root, have health checks and no plain-text secrets",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=POLICIES,
)
