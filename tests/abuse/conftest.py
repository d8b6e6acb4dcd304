from tests.e2e.conftest import api  # noqa: F401 - the gateway client, on this directory's platform
from tests.reliability.harness import harness, platform  # noqa: F401
