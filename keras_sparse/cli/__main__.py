"""`python -m keras_sparse.cli ...`."""

import sys

from keras_sparse.cli.main import main

sys.exit(main())
