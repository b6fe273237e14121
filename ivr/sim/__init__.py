"""The local Twilio emulator: REST API, TwiML interpreter, Media Streams caller and scripts."""

from .carrier import Carrier
from .result import CallResult
from .script import CallerScript

__all__ = ["Carrier", "CallResult", "CallerScript"]
