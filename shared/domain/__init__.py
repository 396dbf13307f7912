"""Pure domain: the order aggregate and workflow. Imports nothing outside the standard library."""
