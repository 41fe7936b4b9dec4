"""Errors the CLI turns into a one-line message and a non-zero exit."""


class MoError(Exception):
    """A problem the user can act on; its message names the problem in one line."""


class ConfigError(MoError):
    """Configuration is missing or invalid."""


class SourceUnavailable(MoError):
    """The source database cannot be reached."""


class BrokerUnavailable(MoError):
    """The Kafka broker cannot be reached."""


class ContractViolation(MoError):
    """Data or a schema does not match its contract in schemas/."""


class QualityGateFailed(MoError):
    """A quality gate stopped the pipeline; nothing was published."""
