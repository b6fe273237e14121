"""Tests of ivr/web/."""
