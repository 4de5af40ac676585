"""Planning routers: the plan, its pegging and exceptions, shortages, ATP and CTP inquiries."""
