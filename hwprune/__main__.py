import sys

from hwprune.cli import main

sys.exit(main())
