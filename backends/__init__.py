"""Built-in backend plugins. Each registers under the ``bakeoff.backends`` entry-point group,
exactly as a third-party backend would."""
