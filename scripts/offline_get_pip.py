# -*- coding: utf-8 -*-
"""Stand-in for get-pip.py that ansible-test runs to put pip into its sanity venvs.

ansible-test downloads get-pip.py from a host outside the package registries, which
this project's machines cannot reach. This script does the same job with the
interpreter's own ensurepip, then installs the requested packages from PyPI.
"""

from __future__ import annotations

import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY = {'--no-setuptools', '--no-wheel'}

args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
# ensurepip sets PIP_CONFIG_FILE=/dev/null in this process; the real install must see
# the machine's pip configuration (index, CA bundle) again.
env = dict(os.environ)
ensurepip.bootstrap(upgrade=True)
sys.exit(subprocess.call([sys.executable, '-m', 'pip', 'install'] + args, env=env))
