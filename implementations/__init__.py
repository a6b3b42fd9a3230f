"""Built-in DropBlock implementations, one module per family.

Installed as ``dropblock_bench.implementations``. Each family module offers the shared
functional signature ``drop_block2d(x, p, block_size, *, training=True, inplace=False,
generator=None)`` and a thin ``DropBlock2d`` module over it. Their registry records live
in :mod:`dropblock_bench.implementations.records` and reach the registry through the same
entry-point group a third-party plugin uses.
"""
