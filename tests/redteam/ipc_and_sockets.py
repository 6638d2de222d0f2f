# Leaving System V shared memory and a message queue for a later notebook, and talking to a local daemon's Unix socket.
# lesson: 00_setup
# base: lesson
# needs: namespaces
# expect-status: graded
# expect-points: 0
import ctypes, socket
libc = ctypes.CDLL(None, use_errno=True)
IPC_CREAT = 0o1000
libc.shmget(0x4C4C4D43, 4096, IPC_CREAT | 0o666)  # a segment that outlives its creator unless removed
libc.msgget(0x4C4C4D44, IPC_CREAT | 0o666)
libc.semget(0x4C4C4D45, 1, IPC_CREAT | 0o666)
for path in ("UNIX_SOCKET", "/var/UNIX_SOCKET"):  # /run and /var/run are usually the same folder
    try:
        client = socket.socket(socket.AF_UNIX)
        client.settimeout(2)
        client.connect(path)
        client.sendall(b"leaked")
    except OSError:
        pass
