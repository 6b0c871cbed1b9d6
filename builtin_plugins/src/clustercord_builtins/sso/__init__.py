"""``/sso``: kubectl access through Discord sign-in, revocable in seconds (spec §20).

The flow (design: research/peers-recording-sso.md, part B):

1. ``/sso login cluster:`` answers, to the asker only, a Discord authorize link: code flow
   with PKCE S256, scopes ``identify guilds.members.read``, a single-use ``state`` bound to
   the user, the server and the cluster, valid 10 minutes (:mod:`.flow`).
2. Discord redirects to this plugin's ``/callback`` route (the kernel's HTTP service): the
   code is exchanged (form-encoded), ``/users/@me`` must be the one who asked (with 2FA when
   ``require_mfa``), the member's role ids are mapped to Kubernetes groups (``/sso map``),
   ``max_sessions`` revokes the oldest, and a session is created (:mod:`.sessions`); the
   page shows a one-time kubeconfig link (single use, 5 minutes: never the kubeconfig in a
   DM, which is not end-to-end encrypted) (:mod:`.web`).
3. The kubeconfig's server is this plugin's gateway route ``/k8s/<cluster>``; each request
   is checked against its session (revoked, expired, source address) on every call, then
   forwarded as ``discord:<id>`` with the mapped groups and the session id as uid, through
   the kernel's impersonation (the client's ``Authorization`` and ``Impersonate-*`` never
   pass), and audited (:mod:`.gateway`). So ``/sso revoke`` and expiry take effect at the
   next request.
4. Losing a role a session's groups came from, or leaving the server, revokes the session:
   at once when the kernel runs Discord's gateway (the ``discord:member-updated`` and
   ``discord:member-removed`` events, subscribed in the manifest), and in any mode every
   minute (with the bot's ``DISCORD_TOKEN``), when members are read again (:mod:`.jobs`).
"""

from clustercord_builtins.sso import rights
from clustercord_builtins.sso.jobs import RECHECK_JOB, member_changed
from clustercord_builtins.sso.sessions import MIGRATIONS, TOKEN_PATTERN, store_of
from clustercord_sdk import hookimpl


@hookimpl
async def on_enable(ctx):
    # Losing a mapped role, or leaving the server, ends the sessions it gave within a minute.
    ctx.scheduler.every("1m", "jobs:recheck", job_id=RECHECK_JOB)
    # Impersonate only the mapped groups, bind only the mapped ClusterRoles (rights.py); in
    # the background: enabling must not wait on clusters.
    await rights.narrow(ctx.kubernetes, store_of(ctx).mapping_rules(), wait=False)


@hookimpl
async def on_event(event, ctx):
    # Only the kernel's Discord gateway publishes these: Discord's word, not a plugin's.
    await member_changed(ctx, event)


@hookimpl
def storage_migrations():
    return MIGRATIONS


@hookimpl
def secret_patterns():
    return [TOKEN_PATTERN]
