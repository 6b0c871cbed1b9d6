"""The isolated tier: plugins that are not release-signed builtins run in a child process.

- :mod:`.protocol`: length-prefixed JSON frames and the codec of the SDK's values (no
  pickle: the kernel never unpickles what a child sends, it only builds allowlisted SDK
  dataclasses from JSON);
- :mod:`.child`: the child's main: limits itself, drops privileges when it can, imports the
  verified plugin from its signed source and runs its handlers and hooks, with ``ctx`` a proxy
  whose every call is a request to the kernel;
- :mod:`.host`: the kernel side: which plugins are isolated, spawning and supervising each
  child, the stub package registered with pluggy, serving the child's requests with the
  plugin's own kernel-side context (so every permission check stays in the kernel);
- :mod:`.stub`: the package object that stands for an isolated plugin in the kernel;
- :mod:`.view`, :mod:`.seccomp`, :mod:`.cgroups`: what contains its process (below).

This package imports nothing of the kernel at its top: the child imports only
:mod:`.protocol`, :mod:`.child`, :mod:`.seccomp`, :mod:`clustercord.plugins.loader` and
:mod:`clustercord.plugins.calling`.

What holds (tested in ``tests/isolation``), and what does not:

- The plugin holds no kernel object: the kernel's services, credentials and database exist
  only in the kernel's process; what the plugin reaches is an allowlist of requests (store,
  Kubernetes as its own ServiceAccount and for the invoking user, send, confirm, scheduler,
  approvals, audit, notifier, log), each checked by the kernel as for an in-process plugin.
- Its tables: ``ctx.store.table(name)`` is ``<plugin>__<name>`` in the kernel, each operation
  a request; keyword arguments that take SQL are refused, ``where``/``select``/``order_by``
  run on the store's read-only connection that sees only the plugin's tables, and
  ``delete_where`` on a connection whose authorizer allows reading and deleting that one
  table. ``storage_migrations`` run in the process against that store; the kernel records
  each version once its step succeeded (no transaction spans the pipe: a step that fails
  midway runs again at the next activation) and a failure disables the plugin, saying so.
- ``ctx.kubernetes.exec`` and ``conversations``: the kernel opens them (exec as the plugin's
  identity, checked as in-process; a conversation for the invocation of the call in flight,
  never one the plugin describes) and holds them by handle for that process only (16 at
  most); they are closed when the process ends. ``identity-map`` and ``cluster-registry``
  are served read-only. ``plugin-admin`` and ``approvals-admin`` are refused at activation,
  naming the in-process tier.
- A restarted process runs ``on_enable`` again before the call that restarted it.
- The in-process tier for a plugin that is not a builtin: its manifest asks for capability
  ``in-process`` and an admin granted it (``host.granted_in_process``); ``isolation = "all"``
  and the ``isolate`` list still isolate it.
- Its environment is scrubbed (no ``KUBECONFIG``, no tokens, no ``CLUSTERCORD_*``), it inherits
  no descriptor of the kernel's but its pipes, and its home, ``TMPDIR`` and working directory
  are ``<data dir>/plugins/<name>/``.
- Resource limits (``setrlimit``, set by the child itself before any plugin code runs):
  512 MB of address space (a 4 GB allocation fails, the process is ended and the plugin
  marked failed), 3600 s of CPU time over its life, 256 open files, no core files.
- A per-call wall-clock timeout (``isolation_timeout``, or the guard's budget for hooks and
  jobs) ends a process that spins, sleeps or is stopped; a crash is answered at once. The
  kernel's loop never waits on a child (writes go through a thread of their own).
- **When the kernel runs as root** (the tests), each plugin's process drops to a uid and gid
  of its own (no account needed) before its code runs: file permissions hold (the data
  directory's ``secret.key``, signing keys, kubeconfigs, ``/proc/<kernel>/environ`` and
  ``mem``), ``RLIMIT_NPROC`` holds (a fork bomb stops at 64 tasks, and only that plugin's
  budget is spent), and plugins cannot signal or trace each other or the kernel.
- **When the kernel is not root** there is no uid drop: the process runs as the kernel's
  user, and ``RLIMIT_NPROC`` would count the kernel's own processes. What closes that is
  the view below (a user namespace) and the pids cgroup.
- **Its own file view** (:mod:`.view`, ``isolation_sandbox``: ``auto`` by default): bwrap
  starts the child in mount, pid, IPC, UTS and network namespaces of its own, with a
  filesystem of only the host's system directories, a few ``/etc`` files, the Python
  installation and the ``sys.path`` directories (read-only), its own verified folder, and
  ``<data dir>/plugins/<name>/`` read-write; a private ``/tmp``, its own ``/proc``, a
  minimal ``/dev``. The data directory's keys, keyring, kubeconfigs and database, other
  plugins' directories and the kernel user's home are absent, root or not (not root: a
  user namespace, uid 1000 inside, no capability). ``bwrap`` refuses to start isolated
  plugins where bwrap cannot run; ``auto`` warns once and runs them without the view.
- **No network unless declared**: a network namespace of its own (loopback only) unless its
  manifest declares capability ``network`` and an admin granted it.
- **seccomp** (:mod:`.seccomp`, installed by the child before the plugin is imported):
  ptrace, process_vm_*, mount and the mount API, chroot, pivot_root, unshare, setns, clone
  with namespace flags, bpf, perf_event_open, keyrings, kexec, modules, reboot, swap,
  userfaultfd, acct, clock setting, open_by_handle_at fail with ``EPERM``; other ABIs (x32,
  32-bit) too.
- **cgroups** (:mod:`.cgroups`): where the kernel may make groups (v2 delegated, or v1
  ``memory``/``pids``), one per process under the kernel's own group: resident memory
  (``isolation_memory_mb``; the OOM killer ends it, the plugin is marked failed saying so,
  restarted with backoff; the address-space limit is then looser, so a 4 GB allocation
  still fails at once) and ``pids.max``. Where there are none, it is said once in the log
  and in ``IsolationHost.status()`` (``clustercord plugins list``).
- Not a VM: the process shares the host's Linux kernel (the filter denies what plugins never
  need; it is not an allowlist); a plugin granted ``network`` reaches what the host
  reaches; without bwrap there is no view, and without cgroups memory is bounded by address
  space only. CPU is bounded by time over the process's life, not by share.
"""
