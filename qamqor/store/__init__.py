"""The operational store (SQLAlchemy 2 + Alembic): offers, published daily results, cases,
users, appeals and the access log. SQLite at DIR/qamqor.db by default, PostgreSQL in production
through `QAMQOR_DATABASE_URL`. The models use portable types only; every table module is imported
here so that Alembic sees the whole schema."""

from qamqor.store import access, casework, published  # noqa: F401
from qamqor.store.models import Base  # noqa: F401
