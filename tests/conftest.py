import contextlib
import functools
import http.server
import threading
from urllib.parse import urlparse

import pytest
import torch

from dphelpers.data import load_mocap, split_clips


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def served(directory):
    """Serve ``directory`` on 127.0.0.1 (an ephemeral port) for the browser tests; yields the
    base URL, ending in a slash; the server stops on exit."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def watched_page(browser):
    """A new browser context and page (1280 x 1000) that report what a reader would suffer:
    console errors, page errors, failed requests, HTTP errors, and any request to a host other
    than 127.0.0.1 (aborted: the book must work offline).  Returns (page, context, problems),
    ``problems`` a list that fills while the page runs."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    problems: list[str] = []

    def route(r):
        url = r.request.url
        if url.startswith(("data:", "blob:")) or urlparse(url).hostname == "127.0.0.1":
            r.continue_()
        else:
            problems.append(f"request to another host: {url}")
            r.abort()

    context.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url} ({r.failure})"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
    return page, context, problems


@pytest.fixture(scope="session")
def splits():
    """The embedded data's (train_poses_m, test_poses_m)."""
    return split_clips(load_mocap())


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def executed_notebooks(tmp_path_factory):
    """Every notebook executed ONCE with QUICK=True (as the book executes them):
    ``{name: executed path or the RuntimeError it raised}``, shared by the notebook and book tests."""
    from dphelpers.tools.book import execute_notebooks, find_notebooks

    out = tmp_path_factory.mktemp("executed")
    results = {}
    for nb in find_notebooks():
        try:
            results[nb.name] = execute_notebooks([nb], out, quick=True, progress=False)[0]
        except RuntimeError as err:
            results[nb.name] = err
    return results
