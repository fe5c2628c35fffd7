"""Docker-free local runner for the SAM template.

``python -m devtools.local run|invoke|demo|openapi``
"""
