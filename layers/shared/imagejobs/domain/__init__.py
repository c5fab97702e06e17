"""The domain: the rules, no I/O (requests, jobs and their states, the poll schedule, prices and
the model catalog, budgets, image rules, events' detail, errors, the clock, settings). It imports
only the domain, pydantic, and Pillow lazily."""
