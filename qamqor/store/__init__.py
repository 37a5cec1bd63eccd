"""The operational store (SQLAlchemy 2 + Alembic): offers and assignments for now; cases,
appeals and the access log later. SQLite at DIR/qamqor.db by default, PostgreSQL in production
through `QAMQOR_DATABASE_URL`. The models use portable types only."""
