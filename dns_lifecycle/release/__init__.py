"""The release engine: domains moved from their paid cluster to the free one, stage by
stage (rule 6), below the flow that schedules it.

``run.release`` is the entry point; ``stages`` the calls of each stage, ``chunks`` the
domains taken through them on threads, ``pool`` the worker processes for live clusters,
``wait`` the wait for the free cluster's secondaries, ``report`` the step's shared report.
"""
