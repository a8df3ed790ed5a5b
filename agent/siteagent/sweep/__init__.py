"""``site-agent sweep``: measure a payload over a grid of user_endpoint_config shapes on the site.

grid (parse and validate the points), constraints (grid-file expressions), payload (what each
rank runs), task (the function that runs on the worker), runner (points in flight, budget,
resume), results (JSON lines), objective (ranking), output and plot (table, winner, HTML/SVG),
progress (terminal or lines), run (one sweep, start to end), command (the click command
``cli.py`` registers).
"""
