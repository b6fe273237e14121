"""Tests of ivr/media/."""
