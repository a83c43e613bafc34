"""The foundation every layer imports: settings, the database, the error tree.

It imports nothing else of the project, so any module may depend on it.
"""
