"""A shop on its own origin, with the tag URL filled into its pages. Used by `vitrina demo` (with
a Storefront: the demo shop's pages rendered from its feed, and its product pictures) and by the
e2e tests (static pages of e2e/pages/).

Switches for pages that test the tag under harder conditions:
- a page containing `{{NONCE}}` gets a fresh nonce there and is served with the strict
  header `Content-Security-Policy: script-src 'nonce-N'; style-src 'nonce-N'` (no inline
  code, no eval: only what carries the nonce runs or styles the page);
- `?delay=<ms>` on any request (at most 5000) answers that much later, as a slow
  third-party script or API would;
- `{{IDENTITY}}` in a page becomes the value of the cookie `shop_identity` (HTML-escaped; empty
  without it): the identity token a shop's server would put on the tag for its signed-in
  customer (`data-identity`), as the shop's session cookie would tell it who is signed in.
"""
import html
import secrets
import threading
import time
from http.cookies import SimpleCookie
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

MAX_DELAY_MS = 5000


def make_shop_server(host, port, pages_dir, vitrina_origin, site, storefront=None):
    pages_dir = Path(pages_dir)

    class ShopHandler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(pages_dir), **kwargs)

        def do_GET(self):
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            delay = query.get("delay", ["0"])[0]
            if delay.isdecimal():
                time.sleep(min(int(delay), MAX_DELAY_MS) / 1000)
            if storefront is not None:
                rendered = storefront.page(url.path, {k: v[0] for k, v in query.items()})
                if rendered is not None:
                    return self._send(*rendered, "text/html; charset=utf-8")
                product = storefront.by_id.get(url.path.removeprefix("/img/").removesuffix(".svg"))
                if url.path.startswith("/img/") and product:
                    return self._send(200, storefront.product_svg(product), "image/svg+xml")
            name = "index.html" if url.path in ("", "/") else url.path.lstrip("/")
            page = pages_dir / name
            if page.suffix != ".html" or not page.is_file() or pages_dir not in page.resolve().parents:
                return super().do_GET()
            text = page.read_text().replace("{{VITRINA}}", vitrina_origin).replace("{{SITE}}", site)
            if "{{IDENTITY}}" in text:
                cookies = SimpleCookie(self.headers.get("Cookie", ""))
                token = cookies["shop_identity"].value if "shop_identity" in cookies else ""
                text = text.replace("{{IDENTITY}}", html.escape(token))
            csp = None
            if "{{NONCE}}" in text:
                nonce = secrets.token_urlsafe(16)
                text = text.replace("{{NONCE}}", nonce)
                csp = f"script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'"
            body = text.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            if csp:
                self.send_header("Content-Security-Policy", csp)
            self.end_headers()
            self.wfile.write(body)

        def _send(self, status, text, content_type):
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return ThreadingHTTPServer((host, port), ShopHandler)


def serve_in_thread(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread
