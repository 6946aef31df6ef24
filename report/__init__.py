"""The run report: `python -m report runs/<name>` writes a self-contained `runs/<name>/report.html`."""
