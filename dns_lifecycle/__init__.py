"""dns-lifecycle: the subscription lifecycle of paid DNS-hosting instances."""
