"""Stand-in that hides the optional ``rfc3987_syntax`` package from the test cluster's processes.

Ray imports jsonschema, which imports ``rfc3987_syntax`` when it is installed (here through the
Jupyter packages of the test extra); that module builds a parser grammar at import time, about
6 s of CPU in every Ray process. On a busy machine this pushes the raylet's agents past Ray's
fixed 15 s start deadline. jsonschema treats the package as optional (an ImportError makes it
skip one URI format check that nothing here uses), so the test cluster runs without it.
"""

raise ImportError("rfc3987_syntax is left out of the Ray test cluster (slow import)")
