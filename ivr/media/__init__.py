"""The media socket side: the Media Streams wire, each socket's session, its turns, endpointing."""
