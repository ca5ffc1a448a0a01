"""The kubernetes target of the Pulumi program (stack config `target: kubernetes`): one component per file.

`platform.py` wires the namespace and the components; `workloads.py` holds what every workload shares
(labels, security context, resources, probes, volumes). docs/kubernetes.md says how it is verified.
"""
