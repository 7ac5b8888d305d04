import sys

from sea_tf.cli.main import main

sys.exit(main())
