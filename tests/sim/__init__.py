"""Tests of ivr/sim/, the local Twilio emulator."""
