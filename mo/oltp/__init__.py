"""The insurer's OLTP source systems: models, migrations and connections."""

# Every table the migrations create is on Base.metadata whichever module a caller imports first, so
# autogenerate and the drift test see the outbox too.
from mo.oltp import outbox as _outbox  # noqa: F401
from mo.oltp import privacy as _privacy  # noqa: F401, E402 - consent evidence, contact preferences, erasure requests
