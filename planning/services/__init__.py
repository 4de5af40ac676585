"""Planning services: load the plan's inputs in one unit of work, run planning.rules, return the plan."""
