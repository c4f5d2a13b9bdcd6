"""nvib."""
