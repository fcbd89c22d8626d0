"""What a node's install and removal do (the plan) and the exact shell they run (pure)."""
