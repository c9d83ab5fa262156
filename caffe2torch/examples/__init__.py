"""Built-in example data and nets."""
