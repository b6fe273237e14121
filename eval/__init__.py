"""Hebrew call scenarios (`make eval`): whole calls through the emulator, checked by rule."""
