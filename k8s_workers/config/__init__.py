"""The stack configuration: value types, models, and the loader that finds every error."""
