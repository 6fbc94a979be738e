"""wrapgate connector ``rest``: export and import records of HTTP/JSON APIs."""
