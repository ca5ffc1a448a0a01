"""The BentoML service and what it needs; built into each bento by pipelines.bento."""
