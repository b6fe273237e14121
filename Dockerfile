# The line as one container, for a PaaS that builds images (Render's Docker runtime, Fly.io):
# Debian's espeak-ng and ffmpeg, then requirements.txt alone, then scripts/start.sh on $PORT.
# See docs/deploy.md. The Python here is .python-version's (a test keeps the two the same).
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends espeak-ng ffmpeg \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir --disable-pip-version-check -r requirements.txt
COPY . .
# var/ (SQLite, tokens, recordings) and static/tts/ (the MP3 cache) are written at run time:
# mount a volume on /app/var, or set DATABASE_URL to PostgreSQL (see docs/deploy.md). The
# process runs as root inside the container, so a platform volume (root-owned) is writable.
RUN mkdir -p var static/tts
ENV PORT=8080 PYTHONUNBUFFERED=1
EXPOSE 8080
CMD ["bash", "scripts/start.sh"]
