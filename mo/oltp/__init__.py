"""The insurer's OLTP source systems: models, migrations and connections."""

# Every table the migrations create is on Base.metadata whichever module a caller imports first, so
# autogenerate and the drift test see the outbox and the claims API's tables too.
from mo.oltp import claims_tables as _claims_tables  # noqa: F401
from mo.oltp import outbox as _outbox  # noqa: F401
