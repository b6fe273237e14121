"""gunicorn entry point: `gunicorn -w 1 --threads 64 app:app`."""

from ivr import create_app

app = create_app()
