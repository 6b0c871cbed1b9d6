"""``/help``: the command list, derived from the enabled plugins' manifests."""
