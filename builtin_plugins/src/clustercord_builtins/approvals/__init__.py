"""``/approval``: the admin side of the kernel's approval service."""
