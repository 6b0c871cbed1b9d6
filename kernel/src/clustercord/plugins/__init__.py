"""The plugin platform: discovery without import, verification, guarded hooks, lifecycle."""
