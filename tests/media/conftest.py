"""The socket side's shared fixture: a line's services in stream mode on fake engines."""

import pytest

from ivr.app import create_app

from ..conftest import make_settings


@pytest.fixture
def runtime(tmp_path):
    app = create_app(make_settings(tmp_path, asr_engine="fake", llm_engine="fake",
                                   tts_engine="fake", turn_mode="stream", reply_mode="stream"))
    yield app.extensions["ivr"]
    app.extensions["ivr"].close()
