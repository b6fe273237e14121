"""gunicorn entry point: `gunicorn -w $WORKERS -k ivr.asgi.Worker app:app` (scripts/start.sh)."""

from ivr.app import create_app
from ivr.asgi import LineApp

flask_app = create_app()
app = LineApp(flask_app)
