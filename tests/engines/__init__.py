"""Tests of ivr/engines/."""
