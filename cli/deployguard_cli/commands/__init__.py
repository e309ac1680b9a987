"""Sub-commands of ``deployguard``: each module defines ``register(subparsers)``."""
