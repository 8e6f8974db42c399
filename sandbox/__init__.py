"""An amoCRM v4 sandbox server that behaves like the real API, quirks and limits included."""
