#!/usr/bin/env python3
"""Server side of bench/names.sh: accepts TCP on 443 and reads whatever
comes, so a client's ClientHello and probes are acknowledged like a real
server's. Usage: names_sink.py READY_FILE"""
import selectors
import socket
import sys


def main():
    sel = selectors.DefaultSelector()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", 443))
    ls.listen(512)
    ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ)
    open(sys.argv[1], "w").write("ready\n")
    while True:
        for key, _ in sel.select():
            if key.fileobj is ls:
                try:
                    c, _ = ls.accept()
                except OSError:
                    continue
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ)
            else:
                try:
                    data = key.fileobj.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()


if __name__ == "__main__":
    main()
