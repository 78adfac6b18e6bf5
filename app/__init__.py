"""The product surface: the ``featurestream`` command line, the worker's Faust app, its web views.

Public API:

- ``app.cli.main``: the console script (commands in ``cli_run``, ``cli_offline``, ``cli_control``).
- ``app.faust_app.create_app``: one worker's app, built from settings and a feature module,
  returning an ``app.runtime.Runtime``.
- ``app.web`` and ``app.web_scoring``: the HTTP routes (see docs and ``GET /openapi.json``);
  ``app.tokens`` (scoped bearer tokens) and ``app.web_auth`` (their check on a request).
"""
