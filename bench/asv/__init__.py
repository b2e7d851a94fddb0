"""asv benchmarks: thin classes over the experiment packages (see each module).

    asv machine --yes
    asv run --quick --python=same --set-commit-hash $(git rev-parse HEAD)
    asv publish        # -> .asv/html/index.html

The scale comes from BENCHLAB_SCALE (default tiny). `time_*` benchmarks track speed, `track_*`
benchmarks track result metrics, so a change in a result shows in the history too.
"""
