"""``/audit``: the kernel's audit log for admins, read-only (capability ``audit-read``).

``/audit list`` pages the calls newest first, ``/audit verify`` checks the chain and names
the commands that started with no result (killed midway), ``/audit show`` one entry."""
