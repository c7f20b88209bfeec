"""Chat: sampling settings, sessions that stream and measure themselves, and the history store."""
