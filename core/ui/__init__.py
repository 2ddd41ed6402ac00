"""``lamina ui``: a local web UI over a stack's runs (the optional extra ``lamina[ui]``).

- :mod:`.queries` reads runs, DAGs, tasks, logs, artifacts' previews, metrics and comparisons
  from the stack's metadata and blob stores, as JSON-ready dicts (it never unpickles anything);
- :mod:`.app` serves them under ``/api/...`` and the page (plain HTML, CSS and JavaScript in
  ``static/``, nothing fetched from elsewhere), with the access checks;
- :mod:`.server` is the command: it resolves the stack, binds 127.0.0.1 unless told otherwise
  (then requires a token it prints) and runs uvicorn.

Nothing in ``lamina`` imports this package: the command loads it when it runs.
"""
