"""The registry record of this plugin, read by ``dbench list`` through the entry point.

No torch import here (nor in this package's ``__init__``): ``dbench list`` reads every
plugin's records, and it stays instant. The target is imported on first use.
"""

from __future__ import annotations

from dropblock_bench import PAPER_CONTRACT, Implementation

IMPLEMENTATION = Implementation(
    name="example-dropblock",
    target="dbench_example_plugin.layers:drop_block2d",
    contract=PAPER_CONTRACT,
    description="An example plugin: Algorithm 1 with a max-pool over the seeds' corners.",
    supports_inplace=False,
)
