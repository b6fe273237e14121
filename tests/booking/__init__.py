"""Tests of ivr/booking/."""
