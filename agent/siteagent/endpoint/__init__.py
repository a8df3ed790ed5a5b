"""The Globus Compute endpoint: render its files, validate them with the endpoint's own
loader, and drive its engine in-process."""
