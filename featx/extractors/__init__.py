"""Built-in extractors, one module per family.  They register through the
``featx.extractors`` entry-point group exactly like third-party plugins."""
