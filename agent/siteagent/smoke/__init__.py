"""``site-agent smoke-test``: prove the path end to end.

``local``: the real engine in this process (``smoke.local``); batch sites: the installed
endpoint through the Globus Compute SDK (``smoke.site``). Both report their steps in a
``SmokeReport`` (``smoke.steps``) and share the Python task (``smoke.tasks``).
"""
