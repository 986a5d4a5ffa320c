"""Files: the one fsync'd atomic write, and reading user TOML with one-line errors."""
