"""The insurer's OLTP source systems: models, migrations and connections."""

# Every table the migrations create is on Base.metadata whichever module a caller imports first, so
# autogenerate and the drift test see the outbox, the claims API's tables and the consent/erasure tables too.
from mo.oltp import campaign_tables as _campaign_tables  # noqa: F401 - campaigns, contact ledger, holdouts
from mo.oltp import claims_tables as _claims_tables  # noqa: F401
from mo.oltp import outbox as _outbox  # noqa: F401
from mo.oltp import privacy as _privacy  # noqa: F401 - consent evidence, contact preferences, erasure requests
from mo.oltp import segment_tables as _segment_tables  # noqa: F401 - segment definitions, versions, static lists
