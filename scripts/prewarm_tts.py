"""Fill the TTS MP3 cache (greeting, fallbacks, the flow): `python scripts/prewarm_tts.py`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ivr.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(["prewarm", *sys.argv[1:]]))
