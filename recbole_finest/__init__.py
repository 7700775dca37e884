"""recbole-finest: rank-preserving fine-tuning (FINEST) for RecBole sequential recommenders."""

import importlib.util

__version__ = "0.1.0"

#: The one step ``pip install recbole-finest`` cannot do (docs/install.md).
RECBOLE_STEP = "pip install --no-deps recbole==1.2.1"

if importlib.util.find_spec("recbole") is None:
    raise ImportError(
        "recbole-finest needs RecBole 1.2.1, which is not installed. RecBole's metadata pins "
        "ray<=2.6.3 (no wheel for Python 3.12+, no NumPy 2), so pip does not install it with the "
        f"plugin: run `{RECBOLE_STEP}` (its other requirements came with recbole-finest), or "
        "`bash scripts/run.sh test` in a checkout. See docs/install.md."
    )

# RecBole 1.2.1 on today's stack (NumPy 2, pandas 3, torch >= 2.6, Ray >= 2.41): patched when its
# modules are imported (recbole_finest.compat.stack). The recbole_finest-stack.pth start-up hook
# does the same for scripts that never import the plugin.
from recbole_finest.compat import startup as _startup  # noqa: E402

_startup.install()
