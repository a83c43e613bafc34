"""Entry points for people: the command line, inventory import and export, the seed,
the e-mail preview. They sit above the flows and may import every layer."""
