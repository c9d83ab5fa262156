"""``python -m caffe2torch VERB ...``"""

import sys

from caffe2torch.cli.main import main

sys.exit(main())
