"""Tests of ivr/notify/."""
