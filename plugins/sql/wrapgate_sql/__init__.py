"""wrapgate connector ``sql``: export and import rows of any SQLAlchemy database."""
