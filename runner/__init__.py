"""The pipeline runner: the whole NSROM method as one resumable run (``pipeline.py``).

It sits above the stage packages (imports point one way: ``nsrom`` <- ``classification``,
``segmentation`` <- ``runner``). ``stages`` lists the stages of docs/method.md 1-7 in
order, each a call of the same code as its stage script; ``run`` runs them, skipping
completed ones (``state`` keeps the completion markers); ``seg_rounds`` derives the
config and paths of the two DeepLab-v2 rounds; ``results`` gathers the scores into
``results.json``/``results.md``; ``figures`` draws the qualitative grid; ``presets``
holds the settings; ``context`` every path of a run.
"""
