"""What the CLI's exit codes mean, as the two bases every expected failure derives from.

Each module keeps its own error type (`ConfigError`, `DeployError`, ...); deriving from one of these
tells the CLI how to exit without it importing every module up front.
"""


class Refused(RuntimeError):
    """Exit 1: a gate, a deploy or a reproduction said no; nothing moved."""

    step = "the step"  # the CLI prints "<step> failed, nothing moved: <message>"


class CannotRun(RuntimeError):
    """Exit 2: bad input (config, data, arguments) or a platform part that is not there."""
