"""The JSON API: one router module per resource, all in the `{success, message, data}` envelope."""
