"""The recipes shipped with ``ser``: one folder per corpus with ``recipe.toml`` and a README.

Installed as the package data of ``ser.recipes``; :func:`ser.recipe.load_recipe` finds them.
"""
