"""The worked example of docs/integrators.md, loaded from the document itself, so the guide
cannot drift from code that works."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[3] / "docs" / "integrators.md"
MODULE_NAME = "acme_feeds.tipping_bucket"
ENTRY_POINT = f"{MODULE_NAME}:TippingBucketFeed"


def guide_code() -> str:
    text = GUIDE.read_text(encoding="utf-8")
    found = re.search(r"<!-- example: tipping_bucket\.py.*?-->\s*```python\n(.*?)```", text, re.S)
    if found is None:
        msg = f"{GUIDE}: the tipping_bucket.py example block is missing"
        raise AssertionError(msg)
    return found.group(1)


def load_guide_module() -> types.ModuleType:
    """Import the example as ``acme_feeds.tipping_bucket`` (as its entry point names it)."""
    if MODULE_NAME in sys.modules:
        return sys.modules[MODULE_NAME]
    package = sys.modules.setdefault("acme_feeds", types.ModuleType("acme_feeds"))
    package.__path__ = []
    module = types.ModuleType(MODULE_NAME)
    module.__file__ = str(GUIDE)
    sys.modules[MODULE_NAME] = module
    exec(compile(guide_code(), str(GUIDE), "exec"), module.__dict__)  # the guide's code, verbatim
    return module
