"""The whole NSROM method as one resumable run (``pipeline.py`` at the top level).

``stages`` lists the stages of NSROM.md 1-7 in order, each a call of the same
code as its stage script; ``runner`` runs them, skipping completed ones;
``results`` gathers the scores into ``results.json``/``results.md``;
``figures`` draws the qualitative grid; ``presets`` holds the settings.
"""
