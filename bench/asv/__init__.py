"""asv benchmarks: thin classes over the experiment packages (see each module).

    asv machine --yes
    asv run --quick --python=same --set-commit-hash $(git rev-parse HEAD)
    asv publish        # -> .asv/html/index.html

Every class derives from `benchlab.core.asv_suite.Suite(experiment)`: the config at BENCHLAB_SCALE
(default tiny), the device (BENCHLAB_DEVICE, default auto), torch threads (BENCHLAB_THREADS,
default 1 on CPU, as CI runs the suite) and a Timer for the measuring functions the bench
modules call. `time_*` benchmarks track speed, `track_*` benchmarks track result metrics, so a
change in a result shows in the history too.
"""
