"""Example wrapgate plugin ``contacts``: flow hooks and an installer step."""
