#!/usr/bin/env python3
"""The "internet" side of the site-blocking tests: one process serving
HTTP on 80, HTTPS on 443 and 853 (any name: a wildcard certificate), and a
UDP echo on 443 (stands for QUIC). `/slow` answers after a second, like a
distant site, so a refusal that lands a few milliseconds after the request
is seen still kills the connection before the page arrives.

Usage: sites.py CERT KEY READY_FILE
"""
import http.server
import socket
import socketserver
import ssl
import sys
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/slow"):
            time.sleep(1.0)
        body = ("site %s path %s\n" % (self.headers.get("Host", "-"), self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class TlsServer(Server):
    """TLS handshakes in the connection's own thread: a client whose
    connection the router kills mid-handshake must not stall the others."""

    def __init__(self, addr, ctx):
        super().__init__(addr, Handler)
        self.ctx = ctx

    def finish_request(self, request, client_address):
        request.settimeout(5)
        try:
            request = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        self.RequestHandlerClass(request, client_address, self)


def tls_server(port, ctx):
    return TlsServer(("0.0.0.0", port), ctx)


def udp_echo(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    while True:
        data, addr = s.recvfrom(65535)
        s.sendto(data[:64], addr)


def main():
    cert, key, ready = sys.argv[1:4]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    servers = [Server(("0.0.0.0", 80), Handler), tls_server(443, ctx), tls_server(853, ctx)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    threading.Thread(target=udp_echo, args=(443,), daemon=True).start()
    with open(ready, "w") as f:
        f.write("ready\n")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
