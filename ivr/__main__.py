"""`python -m ivr …`: the command line of the phone line."""

from .cli import main

raise SystemExit(main())
