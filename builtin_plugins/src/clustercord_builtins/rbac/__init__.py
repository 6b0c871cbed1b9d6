"""``/rbac``: who can do what, risky permissions, escalation paths, graphs and reports.

Every command lists the cluster's Roles, ClusterRoles and bindings once and answers offline
with the SDK's RBAC library (``clustercord_sdk.rbac``), which follows the API server's
authorizer exactly; no access review is sent per check.
"""
