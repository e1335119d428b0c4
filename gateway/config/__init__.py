"""The config file: schema, loading, cross-references and every problem at once."""
