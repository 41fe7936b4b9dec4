"""The insurer's OLTP source systems: models, migrations and connections."""
