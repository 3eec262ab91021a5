"""Persistence: SQLAlchemy 2 models, engines/sessions, Alembic migrations, repositories, blob store."""
