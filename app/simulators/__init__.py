"""Demo peers (mail catcher, later the e-gate and web services).

Never imported by production code paths: only ./run.sh (demo) and the tests.
"""
