"""`python -m serving.rollout STEP`: the command line lives in cli.py, so that importing the
package (`from serving.rollout import main`) never imports this module, which runpy would
then warn about running a second time."""

import sys

from serving.rollout.cli import main

if __name__ == "__main__":
    sys.exit(main())
