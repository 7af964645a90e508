#!/usr/bin/env python3
"""A wire with a delay, for the name-blocking tests (this kernel has no
netem): every Ethernet frame arriving on one interface leaves on the other
DELAY_MS later, both ways, so a server behind it is 2 x DELAY_MS away in
round-trip time for every packet (SYN, handshake, data alike).

Usage: delay_line.py IF_A IF_B DELAY_MS READY_FILE
Run in a namespace of its own holding both interfaces, without addresses.
"""
import collections
import socket
import sys
import threading
import time

ETH_P_ALL = 0x0003


def open_raw(ifname):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((ifname, 0))
    return s


def pump(src, dst, delay):
    queue = collections.deque()
    ready = threading.Condition()

    def sender():
        while True:
            with ready:
                while not queue:
                    ready.wait()
                due, frame = queue.popleft()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                dst.send(frame)
            except OSError:
                pass  # a frame too big for the link: dropped, as a wire would

    threading.Thread(target=sender, daemon=True).start()
    while True:
        frame, addr = src.recvfrom(65535)
        if addr[2] == socket.PACKET_OUTGOING:
            continue  # our own sends on this interface
        with ready:
            queue.append((time.monotonic() + delay, frame))
            ready.notify()


def main():
    a, b, delay_ms, ready_file = sys.argv[1:5]
    delay = float(delay_ms) / 1000.0
    sa, sb = open_raw(a), open_raw(b)
    threading.Thread(target=pump, args=(sa, sb, delay), daemon=True).start()
    threading.Thread(target=pump, args=(sb, sa, delay), daemon=True).start()
    with open(ready_file, "w") as f:
        f.write("ready\n")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
