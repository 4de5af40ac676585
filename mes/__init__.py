"""Production execution: work orders, dispatch and attribution, downtime and shifts, OEE, alerts."""
