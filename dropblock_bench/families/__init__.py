"""The exact laws of the regularizers beside DropBlock2d (whose law is :mod:`dropblock_bench.spec`):
DropBlock3d (:mod:`.dropblock3d`), DropPath or stochastic depth (:mod:`.drop_path`, with the
depth rules of :mod:`.depth_rule`), SpatialDropout (:mod:`.spatial_dropout`) and Cutout
(:mod:`.cutout`). Each module names its family's contract axes and derives, exactly, what a
verifier needs: per-position probabilities, expected rates, count variances, the variance shift
between training and eval mode, and a slow reference sampler. Torch is imported lazily.
"""
