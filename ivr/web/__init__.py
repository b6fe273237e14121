"""The webhook side: Twilio's webhooks, the public files and health, the inspector."""
