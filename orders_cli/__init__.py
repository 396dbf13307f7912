"""Operator tools and test traffic: the `orders` CLI, the publisher, and the one test-traffic generator.

Not deployed (.funcignore leaves it out): it imports `shared` (the deployed package) and `devstack`,
never the other way round (tests/unit/test_boundary.py).
"""
