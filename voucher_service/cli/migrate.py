"""Alembic driven from code, so `vouchers init` and the tests migrate the same way."""
import os

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "migrations")


def alembic_config(engine) -> Config:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS_DIR)
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def upgrade(engine) -> None:
    command.upgrade(alembic_config(engine), "head")


def check(engine) -> None:
    """Raises when the models and the migrations disagree (`alembic check`)."""
    command.check(alembic_config(engine))
