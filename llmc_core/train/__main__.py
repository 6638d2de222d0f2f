import sys

from llmc_core.train.cli import main

sys.exit(main())
