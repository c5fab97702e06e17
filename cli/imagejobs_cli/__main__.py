import sys

from imagejobs_cli.main import main

sys.exit(main())
