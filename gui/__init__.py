"""Bitsmith's desktop interface. Views and Qt models over engine data; no numeric work here."""
