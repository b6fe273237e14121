"""Booking appointments: when a caller means, free slots, the appointments and the owner's
calendar."""
