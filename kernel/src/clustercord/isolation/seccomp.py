"""A seccomp filter the isolated child installs on itself before any plugin code runs.

The system calls a plugin never needs, and that reach beyond its process (tracing another
process, reading its memory, mounting, making or joining namespaces, loading BPF or kernel
modules, kernel keyrings, rebooting, changing the clock, opening files by handle), fail with
``EPERM``; ``clone`` with a namespace flag fails with ``EPERM`` and ``clone3`` (whose flags a
filter cannot read) with ``ENOSYS``, so the C library falls back to ``clone``. The architecture
word is checked first: a call of another ABI (32-bit ``int 0x80`` on x86_64, the x32 ABI's
numbers) fails too, so the numbers below cannot be stepped around. ``PR_SET_NO_NEW_PRIVS`` is
set first (required for an unprivileged filter; a set-uid program cannot regain privileges).

The BPF program is built here in Python (``struct sock_filter``) and installed with
``seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC)`` through ctypes: every thread
of the process gets it, and its children inherit it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct

# x86_64 and aarch64 system call numbers of what a plugin never needs.
_DENIED: dict[str, dict[str, int]] = {
    "x86_64": {
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "mount": 165,
        "umount2": 166, "pivot_root": 155, "chroot": 161, "unshare": 272, "setns": 308,
        "bpf": 321, "perf_event_open": 298, "keyctl": 250, "add_key": 248,
        "request_key": 249, "kexec_load": 246, "kexec_file_load": 320, "init_module": 175,
        "finit_module": 313, "delete_module": 176, "reboot": 169, "swapon": 167,
        "swapoff": 168, "userfaultfd": 323, "acct": 163, "settimeofday": 164,
        "clock_settime": 227, "adjtimex": 159, "clock_adjtime": 305,
        "open_by_handle_at": 304, "name_to_handle_at": 303, "iopl": 172, "ioperm": 173,
        "quotactl": 179, "lookup_dcookie": 212, "vhangup": 153, "syslog": 103,
        "uselib": 134, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
        "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    },
    "aarch64": {
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "mount": 40,
        "umount2": 39, "pivot_root": 41, "chroot": 51, "unshare": 97, "setns": 268,
        "bpf": 280, "perf_event_open": 241, "keyctl": 219, "add_key": 217,
        "request_key": 218, "kexec_load": 104, "kexec_file_load": 294, "init_module": 105,
        "finit_module": 273, "delete_module": 106, "reboot": 142, "swapon": 224,
        "swapoff": 225, "userfaultfd": 282, "acct": 89, "settimeofday": 170,
        "clock_settime": 112, "adjtimex": 171, "clock_adjtime": 266,
        "open_by_handle_at": 265, "name_to_handle_at": 264, "quotactl": 60,
        "lookup_dcookie": 18, "vhangup": 58, "syslog": 116, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "mount_setattr": 442,
    },
}  # fmt: skip
_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}  # AUDIT_ARCH_*
ARCHITECTURES = frozenset(_ARCH)
"""Where a filter exists; elsewhere the children run without one (said in the status)."""
_CLONE = {"x86_64": 56, "aarch64": 220}
_CLONE3 = 435
_SECCOMP = {"x86_64": 317, "aarch64": 277}
_X32_BIT = 0x40000000
_CLONE_NAMESPACES = (
    0x00020000
    | 0x02000000
    | 0x04000000
    | 0x08000000
    | 0x10000000
    | 0x20000000
    | 0x40000000
    | 0x00000080
)  # NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME

# BPF: instruction classes and the return values of a seccomp filter.
_LD_ABS_W = 0x20
_JEQ_K, _JGE_K, _JSET_K = 0x15, 0x35, 0x45
_RET_K = 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_OFFSET_NR, _OFFSET_ARCH, _OFFSET_ARG0 = 0, 4, 16  # struct seccomp_data (little endian)

_PR_SET_NO_NEW_PRIVS = 38
_SET_MODE_FILTER = 1
_FILTER_FLAG_TSYNC = 1


class SeccompUnavailable(Exception):
    """This machine's architecture or kernel has no filter for us."""


def machine() -> str:
    name = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(name, name)


def denied(arch: str | None = None) -> dict[str, int]:
    """The denied calls of ``arch`` by name (for the docs and the tests)."""
    return dict(_DENIED[arch or machine()])


def program(arch: str) -> bytes:
    """The filter as ``struct sock_filter[]``."""
    if arch not in _DENIED:
        raise SeccompUnavailable(f"no seccomp filter for architecture {arch}")
    eperm = _ERRNO | errno.EPERM
    numbers = sorted(set(_DENIED[arch].values()))
    code: list[tuple[int, int, int, int]] = []

    def op(kind: int, k: int, jt: int = 0, jf: int = 0) -> None:
        code.append((kind, jt, jf, k))

    # The ABI: anything but the native one is refused (i386 via int 0x80, x32 numbers).
    op(_LD_ABS_W, _OFFSET_ARCH)
    op(_JEQ_K, _ARCH[arch], jt=1)
    op(_RET_K, eperm)
    op(_LD_ABS_W, _OFFSET_NR)
    if arch == "x86_64":
        op(_JGE_K, _X32_BIT, jf=1)
        op(_RET_K, eperm)
    # clone3: the C library falls back to clone, whose flags are checked below.
    op(_JEQ_K, _CLONE3, jf=1)
    op(_RET_K, _ERRNO | errno.ENOSYS)
    # Each denied number: equal → the shared EPERM at the end.
    count = len(numbers)
    for index, number in enumerate(numbers):
        # Over the remaining compares and the four of the clone check to the final EPERM.
        op(_JEQ_K, number, jt=(count - index - 1) + 4)
    op(_JEQ_K, _CLONE[arch], jf=2)
    op(_LD_ABS_W, _OFFSET_ARG0)  # the low 32 bits of clone's flags
    op(_JSET_K, _CLONE_NAMESPACES, jt=1)
    op(_RET_K, _ALLOW)
    op(_RET_K, eperm)
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in code)


class _Filter(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install() -> list[str]:
    """Install the filter on this process (all threads) for good; the names of the denied
    calls. Raises :class:`SeccompUnavailable` when the kernel refuses."""
    arch = machine()
    code = program(arch)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise SeccompUnavailable(f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}")
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = _Filter(len(code) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    result = libc.syscall(
        ctypes.c_long(_SECCOMP[arch]),
        ctypes.c_long(_SET_MODE_FILTER),
        ctypes.c_long(_FILTER_FLAG_TSYNC),
        ctypes.byref(fprog),
    )
    if result != 0:
        raise SeccompUnavailable(f"seccomp(SET_MODE_FILTER): {os.strerror(ctypes.get_errno())}")
    return sorted(_DENIED[arch])
