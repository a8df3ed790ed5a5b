"""`site-agent check`: connectivity through the site proxy and local prerequisites, probed
concurrently, each probe with its own timeout."""
