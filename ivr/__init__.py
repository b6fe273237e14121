"""The Hebrew AI phone line on Twilio (the app itself is built by `ivr.app.create_app`)."""
