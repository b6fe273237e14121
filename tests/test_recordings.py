"""Kept recordings: saved with their metadata for the owner, purged after the retention horizon."""

import json
import os
import time

from ivr.recordings import keep, purge_before


def test_keep_saves_the_audio_and_its_metadata_under_a_safe_name(tmp_path):
    path = keep(str(tmp_path), "RE../x1", b"RIFFdata", {"call_sid": "CA1"})
    assert path == tmp_path / "recordings" / "REx1.wav" and path.read_bytes() == b"RIFFdata"
    assert json.loads((tmp_path / "recordings" / "REx1.json").read_text()) == {"call_sid": "CA1"}


def test_purge_before_deletes_old_recordings_with_their_metadata_and_keeps_recent(tmp_path):
    old, recent = keep(str(tmp_path), "REold", b"a", {}), keep(str(tmp_path), "REnew", b"b", {})
    lonely = tmp_path / "recordings" / "RElonely.json"  # metadata whose audio is gone
    lonely.write_text("{}")
    then = time.time() - 100 * 86400
    for path in (old, old.with_suffix(".json"), lonely):
        os.utime(path, (then, then))
    assert purge_before(str(tmp_path), time.time() - 90 * 86400) == 2
    assert sorted(p.name for p in (tmp_path / "recordings").iterdir()) == [
        "REnew.json", "REnew.wav"]
    assert recent.exists()


def test_purge_before_with_no_recordings_folder_is_zero(tmp_path):
    assert purge_before(str(tmp_path / "nothing-here"), time.time()) == 0
