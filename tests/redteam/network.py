# Opening a network connection to a server the test runs on this machine: it must never arrive.
# lesson: 00_setup
# base: lesson
# needs: namespaces
# expect-status: graded
# expect-points: 0
import socket
for host in ("127.0.0.1", "HOST_ADDRESS"):
    try:
        socket.create_connection((host, PORT), timeout=2).sendall(b"leaked")
    except OSError:
        pass
