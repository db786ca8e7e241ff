"""gunicorn entry point: `gunicorn wsgi:app`."""
from voucher_service import create_app

app = create_app()
