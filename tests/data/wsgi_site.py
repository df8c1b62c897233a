"""A small WSGI site for the real-origin tests, served by gunicorn (gthread workers, TLS).

It behaves like a Django site with ALLOWED_HOSTS: it answers 400 to any Host other than
FERRY_SITE_HOST (default www.example.com). "/" is a page that links to its own host with
absolute URLs and pulls FERRY_SITE_ASSETS stylesheets (default 30), each answered after a short
pause (FERRY_SITE_PAUSE seconds, default 0.05), as a page of a real application would.
"""

import os
import time

HOST = os.environ.get("FERRY_SITE_HOST", "www.example.com")
ASSETS = int(os.environ.get("FERRY_SITE_ASSETS", "30"))
PAUSE = float(os.environ.get("FERRY_SITE_PAUSE", "0.05"))

PAGE = (
    "<!doctype html><html><head><title>site</title>"
    + "".join(
        f'<link rel="stylesheet" href="https://{HOST}/static/{i}.css">' for i in range(ASSETS)
    )
    + f'</head><body><a href="https://{HOST}/about">about {HOST}</a></body></html>\n'
).encode()


def app(environ, start_response):
    host = environ.get("HTTP_HOST", "").split(":")[0]
    if host != HOST:
        body = f"Invalid HTTP_HOST header: {host!r}\n".encode()
        start_response("400 Bad Request", [("Content-Type", "text/plain"),
                                           ("Content-Length", str(len(body)))])
        return [body]
    path = environ.get("PATH_INFO", "/")
    time.sleep(PAUSE)
    if path == "/":
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(PAGE)))])
        return [PAGE]
    body = (f"/* {path} of https://{HOST}/ */ body {{ color: #333 }}\n" * 20).encode()
    start_response("200 OK", [("Content-Type", "text/css"), ("Content-Length", str(len(body)))])
    return [body]
